"""Code lines per package of ``defcon_exp/`` (issue 21's measure): lines holding a token,
without blank lines, comments and docstrings (module, class, function and attribute docstrings).

    python scripts/count_code.py [PACKAGE_DIR]            # default: defcon_exp
    python scripts/count_code.py defcon_exp --base REV    # before/after table against a git revision
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tempfile
import tokenize
from collections import Counter
from pathlib import Path

SKIPPED_TOKENS = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                  tokenize.DEDENT, tokenize.ENDMARKER)


def _is_string(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def code_lines(source: str) -> int:
    """Lines of ``source`` holding code (a docstring, a comment or a blank line is not code).
    Docstrings: a module's, class's or function's first statement, and an attribute docstring
    (PEP 257: a string right after an assignment in a module or class body, as the schema's
    fields carry their help)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        for index, statement in enumerate(body):
            first = index == 0
            after_assignment = (not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                                and index > 0 and isinstance(body[index - 1], (ast.Assign, ast.AnnAssign)))
            if _is_string(statement) and (first or after_assignment):
                docstrings.update(range(statement.lineno, statement.end_lineno + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED_TOKENS:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def per_package(root: Path) -> Counter[str]:
    """``{subpackage or top-level module: code lines}`` of the package at ``root``."""
    counts: Counter[str] = Counter()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        counts[relative.parts[0]] += code_lines(path.read_text())
    return counts


def at_revision(root: Path, revision: str) -> Counter[str]:
    """:func:`per_package` of ``root`` as it was at git ``revision``."""
    top = Path(subprocess.check_output(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                                       text=True).strip())
    inside = root.resolve().relative_to(top)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(top), "archive", revision, str(inside)],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return per_package(Path(tmp) / inside)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="defcon_exp", type=Path)
    parser.add_argument("--base", help="a git revision: print before | after | change per package")
    args = parser.parse_args(argv)
    after = per_package(args.root)
    before = at_revision(args.root, args.base) if args.base else None
    names = sorted(set(after) | set(before or ()))
    print("| package | " + (f"{args.base} | now | change |" if before is not None else "code lines |"))
    print("|---|" + ("---:|" * (3 if before is not None else 1)))
    for name in [*names, "TOTAL"]:
        now = sum(after.values()) if name == "TOTAL" else after.get(name, 0)
        if before is None:
            print(f"| {name} | {now:,} |")
        else:
            then = sum(before.values()) if name == "TOTAL" else before.get(name, 0)
            print(f"| {name} | {then:,} | {now:,} | {now - then:+,} |")


if __name__ == "__main__":
    sys.exit(main())
