"""The package layers: what may import what (a newcomer can trust the folders' roles)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "facetrain"

# importer package -> packages it must never import (at module level or inside a function)
FORBIDDEN = {
    "data": ("eval", "train", "report", "run", "models"),
    "detect": ("data", "eval", "train", "report", "run", "models", "losses"),
    "eval": ("train", "report"),
    "models": ("train", "eval", "report"),
    "losses": ("run", "train", "eval", "data"),
    "sharded": ("run", "train", "eval"),
    "distributed": ("train", "eval", "models", "report"),
    "run": ("train", "eval", "report"),
    "verify": ("train", "report"),
    "tracking": ("train", "eval", "report", "data", "models", "losses"),
}


def _imports(path: Path) -> set[str]:
    return {n for n in _any_imports(path) if n.startswith("facetrain.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_the_layers_below_it(package):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files
    bad = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in files for name in sorted(_imports(path))
           if name.split(".")[1] in FORBIDDEN[package]]
    assert not bad, "\n".join(bad)


def test_export_never_imports_the_trainer():
    assert not {n for n in _imports(PACKAGE / "export.py") if n.split(".")[1] == "train"}


def test_tests_import_helpers_not_conftest():
    """conftest.py holds fixtures only; what tests import lives in tests/helpers.py."""
    tests = Path(__file__).resolve().parent
    bad = [p.name for p in tests.glob("*.py") if "conftest" in {n.split(".")[0] for n in _any_imports(p)}]
    assert not bad, bad


def _any_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
