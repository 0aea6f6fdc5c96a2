"""Renderers: the pure-PyTorch rasterizer and shading helpers (nvdiffrast is used instead when present)."""
