"""scripts/count_code.py counts what issue 21 counts: code, not docstrings, comments or blanks."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "count_code.py"
count = runpy.run_path(str(SCRIPT))

SOURCE = '''"""Module docstring,
two lines."""
import os  # a comment

# a comment line


def f(x):
    """One-line docstring."""
    y = (x +
         1)
    return os.sep, "not a docstring"


class A:
    """Docstring."""

    z = 1
    """An attribute docstring (PEP 257), as the schema's fields carry their help."""
    "a string statement after another string: code"
'''


def test_code_lines_by_hand() -> None:
    # import, def, y = (x +, 1), return, class, z = 1, the second string statement
    assert count["code_lines"](SOURCE) == 8


def test_per_package_groups_by_first_part(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\ny = 2\n")
    (tmp_path / "sub" / "b.py").write_text('"""doc"""\nz = 3\n')
    (tmp_path / "top.py").write_text("# nothing\n\nw = 4\n")
    assert dict(count["per_package"](tmp_path)) == {"sub": 3, "top.py": 1}
