"""ui3d: text-to-3D and one-step 2D distillation driven by one shared f-divergence loss (Uni-Instruct)."""
from ui3d.registry import find, register

__version__ = "0.1.0"
__all__ = ["find", "register", "__version__"]
