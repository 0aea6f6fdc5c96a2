"""The digits teacher: a small class-conditional pixel diffusion model on 16×16 MNIST, for 2D one-step
distillation, and the MNIST classifier whose features score the students."""
from ui3d.teachers.loader import DIGITS_DIR, load_digits_teacher

__all__ = ["DIGITS_DIR", "load_digits_teacher"]
