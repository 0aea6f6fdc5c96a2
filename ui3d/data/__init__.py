"""Data: camera sampling and view-dependent prompts shared by the 3D pipeline and the embedded teacher."""
