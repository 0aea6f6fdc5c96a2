"""Teachers: loaders for diffusers folders, the embedded teacher, analytic teachers."""
