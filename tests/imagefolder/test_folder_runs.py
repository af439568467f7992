"""Image folders end to end on the CPU, with real JPEG files written by the test: a run that
learns, its report, inspect and compare; a sweep; SIGKILL mid-epoch then an exact resume;
and a 2-process torchrun (gloo) that matches the single process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import run_module
from hydra import compose, initialize_config_module
from image_folder import ENV

from defcon_exp.cli.compare import main as compare_main
from defcon_exp.cli.inspect import main as inspect_main
from defcon_exp.cli.report import main as report_main
from defcon_exp.engine.checkpoint import CheckpointError, load_checkpoint
from defcon_exp.rates import count_text
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow
TRAIN = "defcon_exp.cli.train"


def folder_args(root: Path) -> list[str]:
    """3 classes x 8 training images at 32 px, 3 steps an epoch, one decoding worker."""
    return [
        "data=imagefolder", f"data.root={root}", "data.train_crop=32", "data.eval_resize=36",
        "data.eval_crop=32", "data.batch_size=8", "data.eval_batch_size=12", "data.num_workers=1",
        "trainer.device=cpu", "trainer.progress=false", "trainer.log_every_n_steps=1",
        "trainer.num_threads=1", "optim=adamw", "optim.lr=0.01", "scheduler=constant",
    ]


def tiny(root: Path) -> list[str]:
    """The tiny CNN of the reliability tests, with the kit's random policies on."""
    return [*folder_args(root), "model=resnet50", "model._target_=tiny_net.tiny_cifar_model",
            "model.kernel_size=3", "data.auto_augment=trivialaugment", "data.random_erasing=0.25",
            "trainer.epochs=3", "trainer.histograms_every_n_epochs=0", "seed=5"]


def composed(overrides: list[str]):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    drop = {"epoch_time_s", "images_per_s"}
    return [{k: v for k, v in row.items() if k not in drop}
            for row in csv.DictReader((run_dir / "metrics.csv").open())]


def test_resnet18_with_attention_trains_learns_and_is_reported_inspected_compared(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "se"
    summary = train(composed([*folder_args(image_folder), "model=se", "arch=resnet18_imagenet",
                              "trainer.epochs=4", "data.val_size=3", "trainer.histogram_images=6"]),
                    run_dir=run_dir)
    losses = [float(row["train_loss"]) for row in metric_rows(run_dir)]
    assert len(losses) == 4 and losses[-1] < losses[0]  # learning (the tiny CNN below: > chance)
    assert summary["num_classes"] == 3 and summary["image_size"] == 32
    assert summary["global_batch"] == 8 == summary["per_process_batch"] and summary["processes"] == 1
    assert summary["gflops_per_image"] == pytest.approx(2 * summary["gmacs_per_image"])
    # the console scripts' main() in process (no interpreter start-up per tool)
    assert report_main([str(run_dir), "--out", str(tmp_path / "report")]) in (0, None)
    assert "| se | imagefolder |" in (tmp_path / "report" / "report.md").read_text()
    assert inspect_main([f"ckpt={run_dir}", "n_images=6"]) == 0
    assert "6 test images of imagefolder" in capsys.readouterr().out
    stats = json.loads((run_dir / "inspect" / "inspect.json").read_text())
    assert sorted(stats["stages"]) == ["1", "2", "3", "4"]
    assert compare_main([str(run_dir), str(run_dir), "images=6", f"out={tmp_path / 'compare'}"]) == 0
    assert (tmp_path / "compare" / "compare.json").is_file()


def test_a_sweep_over_seeds_runs_every_job_and_learns(image_folder: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_module(TRAIN, ["-m", *tiny(image_folder), "seed=0,1", f"hydra.sweep.dir={sweep}"],
                        tmp_path, timeout=240, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["test"]["top1"] > 50


def ckpt_where(path: Path) -> tuple[int, int] | None:
    try:
        state = load_checkpoint(path)
    except (FileNotFoundError, CheckpointError):
        return None
    position = state.get("position")
    return int(state["epoch"]), int(position["batches_done"]) if position else 0


def test_sigkill_mid_epoch_then_resume_is_exact(image_folder: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    train(composed(tiny(image_folder)), run_dir=reference)
    run_dir = tmp_path / "run"
    env = {**os.environ, **ENV, "DEFCON_TEST_STEP_SLEEP": "0.3"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [*tiny(image_folder), "trainer.checkpoint_every_n_steps=1", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", TRAIN, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 180
    while (ckpt_where(last) or (0, 0)) < (1, 1):  # inside epoch 2
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed_at = ckpt_where(last)
    assert killed_at is not None and killed_at[1] > 0 and not (run_dir / "summary.json").exists()
    resumed = run_module(TRAIN, [f"resume={run_dir}"], tmp_path, timeout=180, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    batches = count_text(killed_at[1], "batch")
    assert f"resumed from epoch {killed_at[0]} + {batches}" in (run_dir / "train.log").read_text()
    got, want = load_checkpoint(last), load_checkpoint(reference / "checkpoints" / "last.pt")
    for name, tensor in want["model"].items():
        assert torch.equal(got["model"][name], tensor), name
    assert metric_rows(run_dir) == metric_rows(reference)


def test_two_processes_under_torchrun_match_one(image_folder: Path, tmp_path: Path) -> None:
    from test_torchrun import assert_same_training, torchrun

    args = [*folder_args(image_folder), "model=resnet50", "model._target_=ddp_net.ddp_tiny_model",
            "trainer.epochs=2", "trainer.histograms_every_n_epochs=0", "data.random_erasing=0.5",
            "optim=sgd", "optim.lr=0.05", "seed=3", "data.batch_size=4"]  # 12 steps, as the helper wants
    result = torchrun([*args, f"hydra.run.dir={tmp_path / 'ddp'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "batch: global 4 = 2 per process x 2 processes" in (tmp_path / "ddp" / "train.log").read_text()
    train(composed(args), run_dir=tmp_path / "single")
    assert_same_training(tmp_path / "ddp", tmp_path / "single", tol=1e-5)


def test_the_cli_stops_at_a_corrupt_image_with_one_line(image_folder: Path, tmp_path: Path) -> None:
    import shutil

    root = Path(shutil.copytree(image_folder, tmp_path / "images"))
    bad = root / "train" / "class_2" / "5.jpg"
    bad.write_bytes(b"\xff\xd8\xff truncated")
    result = run_module(TRAIN, [*tiny(root), "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
                        tmp_path, timeout=180, env=ENV)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("defcon-train: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"defcon-train: error: {bad} cannot be decoded (")
    assert "Traceback" not in result.stderr
