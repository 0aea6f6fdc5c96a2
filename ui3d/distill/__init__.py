"""Losses shared by 2D distillation and 3D guidance, and the 2D distillation system."""
