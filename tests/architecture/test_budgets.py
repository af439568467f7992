"""Size budgets of the package: no file over 350 lines (``ops/``: 450) and no function or
method over 60 lines, counted from its ``def`` line to its last line (docstring included).
A failure lists every offender with its length and its budget."""

from __future__ import annotations

import ast
from pathlib import Path

import defcon_exp

PACKAGE = Path(defcon_exp.__file__).parent
FILE_LINES = 350
OPS_FILE_LINES = 450  # the kernels: a reference implementation and its fused paths side by side
FUNCTION_LINES = 60


def _functions(node: ast.AST, prefix: str = "") -> list[tuple[str, int, int]]:
    """``(qualified name, def line, length)`` of every function below ``node``."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                found.append((name, child.lineno, child.end_lineno - child.lineno + 1))
            found += _functions(child, f"{name}.")
        else:
            found += _functions(child, prefix)
    return found


def over_budget(package: Path) -> tuple[list[str], list[str]]:
    """``(files over their budget, functions over theirs)``, one line per offender."""
    files, functions = [], []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        text = path.read_text()
        budget = OPS_FILE_LINES if path.relative_to(package).parts[0] == "ops" else FILE_LINES
        if len(text.splitlines()) > budget:
            files.append(f"{rel}: {len(text.splitlines())} lines (budget {budget})")
        for name, line, length in _functions(ast.parse(text, filename=str(path))):
            if length > FUNCTION_LINES:
                functions.append(f"{rel}:{line} {name}: {length} lines (budget {FUNCTION_LINES})")
    return files, functions


def test_every_file_fits_its_line_budget() -> None:
    files, _ = over_budget(PACKAGE)
    assert not files, "files over their line budget (split them):\n" + "\n".join(files)


def test_every_function_fits_its_line_budget() -> None:
    _, functions = over_budget(PACKAGE)
    assert not functions, "functions over their line budget (split them):\n" + "\n".join(functions)


def _body(lines: int) -> str:
    """A function of exactly ``lines`` lines, its def line included."""
    return "def f():\n" + "    x = 1\n" * (lines - 1)


def test_the_check_finds_long_files_and_functions(tmp_path: Path) -> None:
    """The check itself can fail: a fake package with one offender of each kind, and
    neighbours exactly at their budgets, which pass."""
    fake = tmp_path / "defcon_exp"
    (fake / "ops").mkdir(parents=True)
    (fake / "at_budget.py").write_text(_body(FUNCTION_LINES) + "\n" * (FILE_LINES - FUNCTION_LINES))
    (fake / "long.py").write_text("x = 1\n" * (FILE_LINES + 1))
    (fake / "ops" / "kernel.py").write_text("x = 1\n" * OPS_FILE_LINES)
    (fake / "ops" / "big.py").write_text("x = 1\n" * (OPS_FILE_LINES + 1))
    method = "class Loop:\n    @staticmethod\n" + "\n".join(
        f"    {line}" for line in _body(FUNCTION_LINES + 1).splitlines()
    )
    (fake / "engine.py").write_text(f"import os\n\n\n{_body(FUNCTION_LINES + 2)}\n\n{method}\n")
    files, functions = over_budget(fake)
    assert files == [
        f"defcon_exp/long.py: {FILE_LINES + 1} lines (budget {FILE_LINES})",
        f"defcon_exp/ops/big.py: {OPS_FILE_LINES + 1} lines (budget {OPS_FILE_LINES})",
    ]
    assert functions == [
        f"defcon_exp/engine.py:4 f: {FUNCTION_LINES + 2} lines (budget {FUNCTION_LINES})",
        f"defcon_exp/engine.py:{FUNCTION_LINES + 10} Loop.f: {FUNCTION_LINES + 1} lines "
        f"(budget {FUNCTION_LINES})",
    ]
