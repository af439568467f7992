"""defcon-train / defcon-eval end to end, in subprocesses with a temporary output root."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import TINY, run_module
from hydra import compose, initialize_config_module
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.run.train import train

TRAIN = "defcon_exp.cli.train"


def test_train_resume_eval_write_the_run_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_module(TRAIN, [*TINY, "trainer.epochs=1", f"hydra.run.dir={run_dir}"], tmp_path)
    assert first.returncode == 0, first.stderr
    for rel in (".hydra/config.yaml", "config.yaml", ".hydra/overrides.yaml", "checkpoints/last.pt", "checkpoints/best.pt",
                "metrics.csv", "summary.json", "train.log"):
        assert (run_dir / rel).is_file(), rel
    log_text = (run_dir / "train.log").read_text()
    for needle in ("trainable parameters", "device=cpu", "train 32 images", "test 16 images"):
        assert needle in log_text

    # resume continues IN THE ORIGINAL run dir: no new Hydra folder anywhere
    second = run_module(TRAIN, [f"resume={run_dir}", "trainer.epochs=2"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / "outputs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    resumes = yaml.safe_load((run_dir / ".hydra" / "resumes.yaml").read_text())  # the start's record is kept
    assert [r["overrides"] for r in resumes] == [[f"resume={run_dir}", "trainer.epochs=2"]]
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["trainer"]["epochs"] == 1
    assert "resumed from epoch 1" in (run_dir / "train.log").read_text()
    effective = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert effective["trainer"]["epochs"] == 2 and effective["data"]["name"] == "synthetic"

    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "images_per_s"} <= set(rows[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["model"] == "resnet50" and summary["num_params"] > 20e6
    assert set(summary["test"]) == {"top1", "top5", "loss"} and summary["best_val"]["epoch"] in (1, 2)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["config"]["data"]["train_size"] == 40

    (tb_run,) = (run_dir / "tb").iterdir()  # tb/<model>_<overrides>: the resume wrote there too
    assert tb_run.name.startswith("resnet50_data=synthetic")
    acc = EventAccumulator(str(tb_run))
    acc.Reload()
    lr_steps = [e.step for e in acc.Scalars("trainer/lr")]
    assert lr_steps == list(range(1, 5))  # 2 batches/epoch, continuous across the resume
    assert len(acc.Scalars("top1/val")) == 2
    assert "top1/test" not in acc.Tags()["scalars"]  # evaluated once: HParams and TEXT only

    evaluated = run_module("defcon_exp.cli.eval", [f"ckpt={run_dir}", "data.eval_batch_size=8"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "top1" in evaluated.stdout
    result = json.loads((run_dir / "checkpoints" / "best.eval.test.raw.json").read_text())
    assert result["num_images"] == 16 and 0 <= result["top1"] <= 100


def test_resume_through_train_is_exact(tmp_path: Path) -> None:
    overrides = [*TINY, "scheduler=warm_restarts", "scheduler.T_0=1", "scheduler.warmup_epochs=0.5",
                 "data.val_size=0", "data.train_size=32"]
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        straight_cfg = compose("config", overrides=[*overrides, f"run_dir={tmp_path / 'a'}"])
        half_cfg = compose("config", overrides=[*overrides, "trainer.epochs=1", f"run_dir={tmp_path / 'b'}"])
        resume_cfg = compose("config", overrides=[*overrides, f"resume={tmp_path / 'b'}"])
    straight = train(straight_cfg)
    train(half_cfg)
    resumed = train(resume_cfg)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["test"] == resumed["test"]
    assert "best_on_test" in resumed


def test_multirun_sweep_writes_one_dir_per_job(tmp_path: Path) -> None:
    sweep = tmp_path / "multi"
    result = run_module(TRAIN, ["-m", *TINY, "trainer.epochs=1", "optim.lr=0.01,0.02",
                                f"hydra.sweep.dir={sweep}"], tmp_path)
    assert result.returncode == 0, result.stderr
    lrs = []
    for job in ("0", "1"):
        assert json.loads((sweep / job / "summary.json").read_text())["epochs"] == 1
        lrs.append(yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())["optim"]["lr"])
    assert lrs == [0.01, 0.02]


def test_default_run_fails_offline_with_the_data_message(tmp_path: Path) -> None:
    result = run_module(TRAIN, ["data.download=false", "trainer.device=cpu"], tmp_path)
    assert result.returncode == 1
    assert "CIFAR-100 not found" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["model=foo"], "model=foo is invalid: model options: cbam, "),
    (["optim.lr=-1"], "optim.lr=-1.0 is invalid: must be > 0"),
])
def test_bad_config_reaches_the_user(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run_module(TRAIN, [*args, "trainer.device=cpu"], tmp_path)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_fresh_run_refuses_a_used_run_dir(tmp_path: Path) -> None:
    used = tmp_path / "used"
    (used / "checkpoints").mkdir(parents=True)
    result = run_module(TRAIN, [*TINY, f"hydra.run.dir={used}"], tmp_path)
    assert result.returncode == 1
    assert "already holds a run" in result.stderr and "resume=" in result.stderr
