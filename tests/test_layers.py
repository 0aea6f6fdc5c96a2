"""Lower layers never import higher ones: the 2D distillation code and the shared losses read nothing from the 3D
guidance package (shared pieces live in `ui3d.distill`, `ui3d.diffusion` or `ui3d.training`)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ui3d"
LOWER = [*sorted((ROOT / "distill").rglob("*.py")), *sorted((ROOT / "distill2d").rglob("*.py")),
         ROOT / "systems" / "distill2d.py"]


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from … import` statement of the file names (relative ones resolved)."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", LOWER, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_2d_and_shared_code_does_not_import_the_3d_guidance(path):
    bad = sorted(m for m in imported_modules(path) if m == "ui3d.guidance" or m.startswith("ui3d.guidance."))
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"
