"""The shape of the code a newcomer changes: short functions and the layering rules.

ruff enforces complexity (`[tool.ruff.lint.mccabe] max-complexity = 12` in pyproject.toml);
these tests enforce what ruff cannot: function length and which modules may import which."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vadkit"
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in `path` (function bodies included)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_function_longer_than_60_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - first + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} {lines}")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_models_import_nothing_from_io():
    for path in sorted((PACKAGE / "models").glob("*.py")):
        bad = {m for m in _imports(path) if m == "vadkit.io" or m.startswith("vadkit.io.")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_training_does_not_import_scoring():
    bad = {m for m in _imports(PACKAGE / "train.py") if m.startswith("vadkit.score")}
    assert not bad, f"train.py imports {sorted(bad)}"


def test_checker_sees_a_long_function(tmp_path):
    """The length rule can fail: a 61-line function is counted as 61."""
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    node = ast.parse(f"def f():\n{body}\n").body[0]
    assert node.end_lineno - node.lineno + 1 == 61
