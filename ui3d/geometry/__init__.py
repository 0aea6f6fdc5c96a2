"""Scene geometry: the stage-1 implicit volume and its position encodings."""
