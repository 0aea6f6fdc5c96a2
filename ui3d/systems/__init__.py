"""Systems: what a stage trains (text-to-3D, 2D distillation), stepped by Lightning."""
