"""The house's layering, read from the source: core imports neither Qt nor the app nor training;
training imports core only (``torchrun`` launches it without the app)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "core": ("strokelens.app", "strokelens.training", "PySide6", "pyqtgraph", "qasync"),
    "training": ("strokelens.app", "PySide6", "pyqtgraph", "qasync"),
}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package):
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imports(path)
        if name.startswith(FORBIDDEN[package])
    ]
    assert found == []


def test_the_scan_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from strokelens.app.model import Model\n")
    assert imports(module) == ["strokelens.app.model"]
