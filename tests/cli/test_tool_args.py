"""The tools' one argument parser (``defcon_exp/cli/args.py``): key=value typed by the
default, ``--flag`` spellings of the same keys, one line per mistake with the nearest key."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from defcon_exp.cli.args import Parsed, Tool, parse

TOOL = Tool("defcon-x", "defcon-x DIR ... [out=DIR] [n=4] [flops=true]",
            {"out": None, "n": 4, "flops": True}, positional="dir", min_positional=1)
CKPT = Tool("defcon-y", "defcon-y ckpt=X", {"ckpt": None, "split": "test"},
            required={"ckpt": "<checkpoint>"}, overrides=True)


def error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_keys_flags_and_bare_arguments(tmp_path: Path) -> None:
    parsed = parse(TOOL, ["a", "--out", "o", "n=7", "--no-flops", "b"])
    assert parsed == Parsed({"out": "o", "n": 7, "flops": False}, ["a", "b"], [])
    assert parse(TOOL, ["a", "--out=o", "--flops", "n=0"]).values == {"out": "o", "n": 0, "flops": True}
    odd = tmp_path / "n=1"  # an existing path is a bare argument even with "=" in its name
    odd.mkdir()
    assert parse(TOOL, [str(odd)]).positional == [str(odd)]
    assert parse(CKPT, ["ckpt=c", "trainer.device=cpu", "data=synthetic"]) == Parsed(
        {"ckpt": "c", "split": "test"}, [], ["trainer.device=cpu", "data=synthetic"]
    )


@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        (TOOL, ["a", "nn=3"], "nn= is not a key of this tool; did you mean n=? (its keys: out, n, flops)"),
        (TOOL, ["a", "--no-flop"], "--no-flop is not a key of this tool; did you mean flops=?"),
        (TOOL, ["a", "n=four"], "n='four' is not an integer: give e.g. n=4"),
        (TOOL, ["a", "flops=maybe"], "flops='maybe' is not true or false: give flops=true or flops=false"),
        (TOOL, ["a", "--out"], "--out needs a value: --out VALUE (or out=VALUE)"),
        (TOOL, ["n=3"], "no dir given"),
        (CKPT, ["split=val"], "ckpt=<checkpoint> is required"),
        (CKPT, ["ckpt=c", "splt=val"], "splt= is not a key of this tool; did you mean split=?"),
        (CKPT, ["ckpt=c", "--device"], "--device is not a key of this tool (its keys: ckpt, split)"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(
    tool: Tool, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse(tool, args) == 2
    line = error(capsys)
    assert line.startswith(f"{tool.prog}: error: ") and says in line, line


def test_help_is_the_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(TOOL, ["a", "--help"]) == 0
    assert capsys.readouterr().out.strip() == TOOL.doc
    assert parse(CKPT, []) == 2  # nothing given to a tool that needs something: help, exit 2
    assert capsys.readouterr().out.strip() == CKPT.doc
    for name in ("compare", "eval", "inspect", "params", "report"):
        module = importlib.import_module(f"defcon_exp.cli.{name}")
        assert module.main(["-h"]) == 0
        assert module.TOOL.prog in capsys.readouterr().out
