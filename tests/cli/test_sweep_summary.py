"""The end of a -m sweep prints its dir, one line per job and the defcon-report command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import run_module
from omegaconf import OmegaConf

from defcon_exp.run.sweep_summary import SweepSummary

HERE = Path(__file__).resolve().parent
TINY_NET_ENV = {"PYTHONPATH": os.pathsep.join([str(HERE.parent / "reliability"), str(HERE),
                                               os.environ.get("PYTHONPATH", "")])}


def fake_job(sweep: Path, job: int, overrides: list[str], top1: float | None) -> None:
    run = sweep / str(job)
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"model": {"attention": overrides[0].split("=")[1]},
                                     "trainer": {"epochs": 3}}), run / "config.yaml")
    if top1 is not None:
        (run / "summary.json").write_text(json.dumps({
            "model": overrides[0].split("=")[1], "test": {"top1": top1, "top5": 99.0, "loss": 1.0},
            "best_val": {"top1": top1 - 1}, "epochs": 3, "epochs_done": 3, "images_per_s": 123.4}))


def test_summary_table_of_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "multirun" / "t1"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['model=se,eca', 'seed=0,1', 'data=synthetic']\n")
    fake_job(sweep, 0, ["model=se", "seed=0", "data=synthetic"], 61.5)
    fake_job(sweep, 1, ["model=eca", "seed=1", "data=synthetic"], None)  # failed early
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"defcon-train: sweep done: 2 jobs in {sweep}"
    assert lines[1].split() == ["job", "run", "status", "epochs", "test", "top-1", "best", "val",
                                "top-1", "img/s"]
    assert lines[2].split() == ["0", "se_seed=0", "done", "3/3", "61.50", "60.50", "123"]
    assert lines[3].split() == ["1", "eca_seed=1", "failed", "0/3", "-", "-", "-"]
    assert "depends on the machine's load" in lines[4] and "scripts/bench_models.py" in lines[4]
    assert lines[5].endswith(f"defcon-report {sweep}")


def test_small_rates_keep_a_decimal() -> None:
    from defcon_exp.rates import format_rate

    assert [format_rate(v) for v in (12345.6, 123.4, 13.94, 1.28, 0.43, 0.043, None)] == [
        "12,346", "123", "13.9", "1.3", "0.4", "0.043", "-"]


@pytest.mark.slow
def test_a_real_two_job_sweep_ends_with_the_summary(tmp_path: Path) -> None:
    args = ["-m", "data=synthetic", "model=resnet50", "model._target_=tiny_net.tiny_cifar_model",
            "data.train_size=32", "data.val_size=8", "data.test_size=8", "data.batch_size=8",
            "data.eval_batch_size=8", "data.loader=tensor", "data.num_workers=0",
            "trainer.epochs=1", "trainer.device=cpu", "seed=0,1", "hydra.sweep.dir=sw"]
    result = run_module("defcon_exp.cli.train", args, tmp_path, env=TINY_NET_ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    start = out.index("defcon-train: sweep done: 2 jobs in sw")
    assert [line.split()[:4] for line in out[start + 2:start + 4]] == [
        ["0", "resnet50_seed=0", "done", "1/1"], ["1", "resnet50_seed=1", "done", "1/1"]]
    assert "scripts/bench_models.py" in out[start + 4]  # speed figures are load-dependent
    assert out[start + 5].endswith("defcon-report sw")
    assert (tmp_path / "sw" / "1" / "tb" / "resnet50_seed=1").is_dir()  # the TB run name
