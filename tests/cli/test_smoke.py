"""``defcon-train experiment=smoke`` — the README's first command — learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_module


@pytest.mark.slow
def test_smoke_experiment_learns(tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke"
    result = run_module("defcon_exp.cli.train", ["experiment=smoke", f"hydra.run.dir={run_dir}"],
                        tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "defcon"
    assert summary["test"]["top1"] > 50.0, summary  # chance is 10% (10 classes); ~94% seen
