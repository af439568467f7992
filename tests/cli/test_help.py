"""``defcon-train --help``: a line of help for every key, keys a data set ignores left out,
and no torch import on the way (it answers in about a second; scripts/bench_cli_latency.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import OmegaConf

from defcon_exp.config import field_help, schema_help
from defcon_exp.run.launch import group_options
from defcon_exp.run.override_checks import schema_keys
from defcon_exp.run.train_help import GROUP_HELP, _leaves, render_help


def undocumented(cls: type | None = None) -> list[str]:
    """The schema's leaf keys without help text (an attribute docstring after the field)."""
    helps = schema_help() if cls is None else schema_help(cls)
    return sorted(key for key, text in helps.items() if not text.strip())


def test_every_config_key_has_a_line_of_help() -> None:
    keys, open_prefixes = schema_keys()
    nodes = {k.rpartition(".")[0] for k in keys}
    leaves = {k for k in keys if k not in nodes} | open_prefixes
    assert set(schema_help()) == leaves
    missing = undocumented()
    assert not missing, f"add an attribute docstring after these schema fields: {missing}"


@dataclass
class _Inner:
    documented: int = 1
    """a line of help"""
    bare: float = 0.5  # a comment is not help


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    name: Optional[str] = None  # noqa: UP045
    """its help's first paragraph,
    over two lines

    Details the help leaves out."""
    count: int = 0


def test_the_check_names_a_schema_field_without_help_text() -> None:
    assert field_help(_Outer)["name"] == "its help's first paragraph, over two lines"
    assert field_help(_Inner) == {"documented": "a line of help", "bare": ""}
    assert undocumented(_Outer) == ["count", "inner.bare"]


def test_every_key_of_every_group_option_has_help_text() -> None:
    """Every key the help lists (as ``render_help`` walks them) has a non-empty line, under
    the default config and under every option of every group: a group file may add keys
    below an open prefix (``model.attention_kwargs.*``) the schema does not name."""
    from hydra import compose, initialize_config_module

    missing: dict[str, str] = {}  # key -> the first command line that lists it
    helps = schema_help()
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for choice in ["", *(f"{g}={o}" for g in GROUP_HELP for o in group_options(g))]:
            cfg = OmegaConf.to_container(compose("config", overrides=[choice] if choice else []))
            for top, node in cfg.items():
                for key, _ in _leaves(node, f"{top}.", helps):
                    if not key.endswith("._target_") and not helps.get(key, "").strip():
                        missing.setdefault(key, choice or "(default)")
    assert {"model", "data", "trainer", "optim", "scheduler"} <= set(GROUP_HELP)
    assert not missing, f"add an attribute docstring after these schema fields: {missing}"


def key_lines(text: str) -> dict[str, str]:
    rows = [line.strip() for line in text.splitlines() if line.startswith("    ") and "=" in line]
    return {row.split("=", 1)[0]: row for row in rows}


def test_help_shows_values_and_descriptions_of_this_command_line() -> None:
    cifar = key_lines(render_help([]))
    assert cifar["trainer.epochs"].split() == ["trainer.epochs=200", "training", "epochs"]
    assert "data.train_size" not in cifar and "data.test_size" not in cifar  # synthetic-only
    assert cifar["data.root"].startswith("data.root=data ")
    synthetic = key_lines(render_help(["data=synthetic", "trainer.epochs=3", "--help"]))
    assert synthetic["data.train_size"].startswith("data.train_size=10000 ")
    assert synthetic["trainer.epochs"].startswith("trainer.epochs=3 ")
    assert "data.root" not in synthetic  # nothing is read from disk


def test_help_and_config_checks_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from defcon_exp.run.train_help import render_help\n"
        "from defcon_exp.run import launch\n"
        "import defcon_exp.cli.train, defcon_exp.cli.report\n"
        "render_help([])\n"
        "try:\n"
        "    launch.check_config_values(['optim.lr=-1'])  # a bad number: refused before torch\n"
        "except ValueError:\n"
        "    pass\n"
        "from defcon_exp.run.override_checks import check_override_keys\n"
        "check_override_keys(['trainer.epochs=3'])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
