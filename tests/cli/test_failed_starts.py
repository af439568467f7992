"""A failed start leaves no trace, and a refused re-run into a used sweep dir changes nothing
there and names resume=auto (issue 25.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_module

from defcon_exp.config import ConfigError
from defcon_exp.run.launch import check_command_line

TRAIN = "defcon_exp.cli.train"


def test_a_cifar_missing_start_leaves_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args = [f"data.root={tmp_path / 'no_cifar'}", "data.download=false", "model=resnet50",
            "trainer.device=cpu", "data.num_workers=0", "trainer.progress=false"]
    result = run_module(TRAIN, args, work, timeout=120)
    assert result.returncode == 1 and "CIFAR-100 not found" in result.stderr
    assert list(work.iterdir()) == []  # not even an empty outputs/

    (work / "outputs").mkdir()  # an outputs/ of the user's stays, without the debug/DATE/TIME
    result = run_module(TRAIN, [*args, "debug=fast_dev_run"], work, timeout=120)
    assert result.returncode == 1
    assert [p.name for p in work.rglob("*")] == ["outputs"]


def used_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text("- optim.lr=0.1\n")
        (sweep / job / "metrics.csv").write_text("epoch\n1\n")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_a_used_sweep_dir_is_refused_with_resume_auto(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = used_sweep(tmp_path)
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    args = ["-m", "data=synthetic", "optim.lr=0.1,0.05", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(ConfigError) as err:
        check_command_line(args)
    message = str(err.value)
    assert "\n" not in message and "already holds a sweep (jobs 0, 1" in message
    assert "resume=auto" in message
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
    check_command_line([*args, "resume=auto"])  # the fix passes
    check_command_line(["-m", "data=synthetic", f"hydra.sweep.dir={tmp_path / 'new'}"])
