"""ui3d: text-to-3D and one-step 2D distillation driven by one shared f-divergence loss (Uni-Instruct)."""
from ui3d.api import LaunchError, RunResult, generate, load_student
from ui3d.registry import find, register

from ui3d import distill  # noqa: E402  (the package is callable: ui3d.distill(config, **overrides) is ui3d.api.distill)

__version__ = "0.1.0"
__all__ = ["LaunchError", "OneStepPipeline", "RunResult", "distill", "find", "generate", "load_student", "register",
           "__version__"]


def __getattr__(name: str):
    """`ui3d.OneStepPipeline` (imported on first use: it imports diffusers)."""
    if name == "OneStepPipeline":
        from ui3d.distill2d.pipeline import OneStepPipeline

        return OneStepPipeline
    raise AttributeError(f"module 'ui3d' has no attribute '{name}'")
