"""What users read from a run's files: throughput that counts only the images trained in
this process, and file modes that follow the umask (colleagues can read results)."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_preemption import run as run_tiny

from defcon_exp.engine.fit import TrainingInterrupted
from defcon_exp.engine.writers import write_json

BATCH, N_TRAIN = 8, 48  # tiny_data(48) in batches of 8: 6 batches an epoch


def test_images_per_s_after_a_mid_epoch_resume_counts_only_the_new_images(tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted):
        run_tiny(tmp_path, signum=signal.SIGTERM, at=(1, 2))  # stops with 3 of 6 batches done
    run_tiny(tmp_path, resume=True)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    images = [float(r["images_per_s"]) * float(r["epoch_time_s"]) for r in rows]
    # epoch 1: all 48; epoch 2 resumed after 3 batches: the 24 left; epoch 3: 48 again
    assert images == pytest.approx([N_TRAIN, N_TRAIN - 3 * BATCH, N_TRAIN], rel=1e-3)
    summary = json.loads((tmp_path / "summary.json").read_text())
    seconds = sum(float(r["epoch_time_s"]) for r in rows)
    assert summary["images_per_s"] == pytest.approx(sum(images) / seconds, rel=1e-3)


@pytest.fixture()
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_result_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    run_tiny(tmp_path)
    written = [tmp_path / "summary.json", tmp_path / "metrics.csv",
               tmp_path / "checkpoints" / "last.pt", tmp_path / "checkpoints" / "best.pt",
               write_json(tmp_path / "inspect" / "inspect.json", {"a": 1}),
               write_json(tmp_path / "checkpoints" / "best.eval.json", {"top1": 1.0})]
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in written} == {
        str(p.relative_to(tmp_path)): "0o644" for p in written}
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and all(mode(p) == 0o644 for p in events)
    os.umask(0o077)  # a private umask is respected too
    assert mode(write_json(tmp_path / "private.json", {})) == 0o600
