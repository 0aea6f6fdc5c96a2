"""Losses shared by 2D distillation and 3D guidance, and the 2D distillation system.

The package is also the Python API's `ui3d.distill(config, **overrides)` (`ui3d.api.distill`): a subpackage and a
function cannot both be the attribute `ui3d.distill`, so the package itself is callable.
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, config: str = "distill2d/uniinstruct-fkl.yaml", **overrides):
        """`ui3d.api.distill`: train a one-step 2D student (`python launch.py --config CONFIG key=value ...`)."""
        from ui3d.api import distill

        return distill(config, **overrides)


sys.modules[__name__].__class__ = _CallablePackage
