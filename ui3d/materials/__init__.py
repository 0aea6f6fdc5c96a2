"""Materials: turn the geometry's per-sample features into colours (threestudio's `models/materials`)."""
