"""Outputs anyone can open: images, videos, meshes."""
