"""Imports point down only: cli -> run -> config rules -> schema -> engine | analysis ->
models -> attention -> ops,
with data/ beside (used by run and the schema, using none of the layers) and the leaves every
layer may use (``safety``, ``keys``...). A walk over every module's imports, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import defcon_exp

PACKAGE = Path(defcon_exp.__file__).parent

#: layer -> rank; a module may import only from layers of a lower rank (or its own layer)
RANKS = {
    "cli": 8,
    "train": 8,  # the ``python -m defcon_exp.train`` shim
    "run": 7,
    "config_rules": 6,  # validate_config: the value rules of every group
    "config": 5,  # the typed schema
    "engine": 4,
    "analysis": 4,
    "data": 3,
    "models": 3,
    "attention": 2,
    "ops": 1,
    "safety": 0,
    "plugins": 0,
    "run_dir": 0,  # the run dir's layout, lock file and probe: run/, engine/ and analysis/ alike
    "rates": 0,  # number formatting (img/s, counts) shared by the engine, report and sweep table
    "conf": 0,
    "keys": 0,  # dotted config keys: the flattener and the placement keys every comparison skips
    "regularisation": 0,  # the schema and rules of the regularisation keys: the engine takes them
}
#: same rank, separate layers: they must not import each other
SIBLINGS = {frozenset({"engine", "analysis"}), frozenset({"data", "models"})}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.startswith("defcon_exp.")]


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        importer = layer_of(".".join(rel.parts))
        if importer == "__init__":
            continue
        for module, line in imports_of(path):
            target = layer_of(module)
            if target == importer or target not in RANKS:
                continue
            upward = RANKS[target] > RANKS[importer]
            sibling = frozenset({importer, target}) in SIBLINGS
            if upward or sibling:
                problems.append(f"{rel}.py:{line}: {importer} imports {module} ({target})")
    return problems


def test_every_layer_is_ranked() -> None:
    layers = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    layers -= {"__init__", "__pycache__"}
    assert layers <= set(RANKS), f"unranked layers: {sorted(layers - set(RANKS))}"


def test_imports_point_down_only() -> None:
    assert upward_imports() == []


def test_the_walk_finds_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a fake engine module importing the run layer is caught."""
    fake = tmp_path / "defcon_exp"
    (fake / "engine").mkdir(parents=True)
    (fake / "engine" / "bad.py").write_text("def f():\n    from defcon_exp.run.train import train\n")
    globals()["PACKAGE"] = fake
    try:
        assert upward_imports() == ["defcon_exp/engine/bad.py:2: engine imports defcon_exp.run.train (run)"]
    finally:
        globals()["PACKAGE"] = Path(defcon_exp.__file__).parent
