"""Renderers: the pure-PyTorch rasterizer and shading helpers (nvdiffrast is used instead when present), and the
NeRF volume renderer with its ray sampling and regularisers (nerfacc's CUDA estimator is used on GPUs)."""
