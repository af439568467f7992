"""``defcon-train --help``: a line of help for every key, keys a data set ignores left out,
and no torch import on the way (it answers in about a second; scripts/bench_cli_latency.py)."""

from __future__ import annotations

import subprocess
import sys

from omegaconf import OmegaConf

from defcon_exp.cli.help import _leaves, render_help
from defcon_exp.cli.key_help import GROUP_HELP, KEY_HELP
from defcon_exp.run.launch import group_options, schema_keys


def test_every_config_key_has_a_line_of_help() -> None:
    keys, open_prefixes = schema_keys()
    nodes = {k.rpartition(".")[0] for k in keys}
    leaves = {k for k in keys if k not in nodes} | open_prefixes
    missing = sorted(leaves - set(KEY_HELP))
    assert not missing, f"add these keys to defcon_exp.cli.key_help.py KEY_HELP: {missing}"
    assert not set(KEY_HELP) - keys, "KEY_HELP names keys the schema does not have"


def test_every_key_of_every_group_option_has_help_text() -> None:
    """Every key the help lists (as ``render_help`` walks them) has a non-empty line, under
    the default config and under every option of every group: a group file may add keys
    below an open prefix (``model.attention_kwargs.*``) the schema does not name."""
    from hydra import compose, initialize_config_module

    missing: dict[str, str] = {}  # key -> the first command line that lists it
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for choice in ["", *(f"{g}={o}" for g in GROUP_HELP for o in group_options(g))]:
            cfg = OmegaConf.to_container(compose("config", overrides=[choice] if choice else []))
            for top, node in cfg.items():
                for key, _ in _leaves(node, f"{top}."):
                    if not key.endswith("._target_") and not KEY_HELP.get(key, "").strip():
                        missing.setdefault(key, choice or "(default)")
    assert {"model", "data", "trainer", "optim", "scheduler"} <= set(GROUP_HELP)
    assert not missing, f"add help text to defcon_exp/cli/key_help.py KEY_HELP: {missing}"


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
        "from defcon_exp.cli.help import render_help\n"
        "from defcon_exp.run import launch\n"
        "import defcon_exp.cli.train, defcon_exp.cli.report\n"
        "render_help([])\n"
        "try:\n"
        "    launch.check_config_values(['optim.lr=-1'])  # a bad number: refused before torch\n"
        "except ValueError:\n"
        "    pass\n"
        "launch.check_override_keys(['trainer.epochs=3'])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
