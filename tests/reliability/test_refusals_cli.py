"""Issue 22, items 9, 10, 12 and 13 through the real ``defcon-train``: every refusal is one
line on stderr naming the value or file and the fix, exit 1, no traceback, and nothing is
created or modified on disk (a refused start leaves an old run's ``.hydra/`` record alone)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from tiny_net import TINY_NET_ARGS

from defcon_exp.engine.checkpoint import load_checkpoint, save_checkpoint
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
ENV.pop("HYDRA_FULL_ERROR", None)
QUICK = [*TINY_NET_ARGS, "trainer.epochs=1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run kept with ``keep_checkpoints=best`` (no last.pt), with a Hydra record."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*QUICK, "trainer.keep_checkpoints=best"])
    train(cfg, run_dir=run_dir)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    return run_dir


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> its content hash ('' for folders)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.name != ".lock"}


def refused(args: list[str], cwd: Path, *needles: str) -> str:
    """Run ``defcon-train args``: exit 1 with one stderr line holding every needle."""
    proc = subprocess.run([sys.executable, "-m", "defcon_exp.cli.train", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("defcon-train: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_refused_start_leaves_the_finished_run_alone(finished: Path, tmp_path: Path) -> None:
    """Item 9: refused before Hydra rewrites .hydra/overrides.yaml; a run kept with
    keep_checkpoints=best is called finished, not 'stopped before its first checkpoint'."""
    before = snapshot(finished)
    line = refused([*QUICK, "seed=7", f"hydra.run.dir={finished}"], tmp_path, str(finished), "finished")
    assert "first checkpoint" not in line and "resume=auto" not in line
    assert snapshot(finished) == before


def missing(tmp: Path) -> list[str]:
    return [f"resume={tmp / 'gone' / 'run'}"]


def long_name(tmp: Path) -> list[str]:
    return [*QUICK, f"hydra.run.dir={tmp / ('x' * 300)}"]


def many_workers(tmp: Path) -> list[str]:
    return [*QUICK, "data.loader=dataloader", "data.num_workers=100000", f"hydra.run.dir={tmp / 'new'}"]


def bad_override(tmp: Path) -> list[str]:
    return [*QUICK, "trainer.epochs=abc", f"hydra.run.dir={tmp / 'new'}"]


def huge_batch(tmp: Path) -> list[str]:
    return [*QUICK, "data.batch_size=100", "data.drop_last=true", f"hydra.run.dir={tmp / 'new'}"]


@pytest.mark.parametrize(("args", "needles"), [
    (missing, ["resume=", "no such run dir or checkpoint"]),  # item 10
    (long_name, ["hydra.run.dir=", "300 bytes long", "choose a shorter"]),  # item 12
    (many_workers, ["data.num_workers=100000 is invalid: must be <="]),  # item 12
    (bad_override, ["trainer.epochs='abc' is invalid", "takes an integer"]),  # item 13
    (huge_batch, ["data.batch_size=100 is invalid", "data.drop_last=false"]),  # item 13
])
def test_a_bad_start_creates_nothing(tmp_path: Path, args: Callable[[Path], list[str]], needles: list[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    refused(args(work), work, *needles)
    assert list(work.iterdir()) == []  # no run dir, no outputs/, no lock-only dir


def damage_summary(run_dir: Path) -> Path:
    (run_dir / "summary.json").write_text("garbage{")
    return run_dir / "summary.json"


def damage_metrics(run_dir: Path) -> Path:
    (run_dir / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage")
    return run_dir / "metrics.csv"


def damage_rng(run_dir: Path) -> Path:
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["rng"]["torch"] = torch.zeros(7, dtype=torch.uint8)
    save_checkpoint(state, last)
    return last


def damage_position(run_dir: Path) -> Path:
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["position"] = {"batches_done": torch.tensor([1, 2]), "metrics": {"sums": torch.ones(2), "count": 1}}
    save_checkpoint(state, last)
    return last


@pytest.fixture(scope="module")
def resumable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("resumable") / "run"
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        train(compose("config", overrides=QUICK), run_dir=run_dir)
    return run_dir


@pytest.mark.parametrize("damage", [damage_summary, damage_rng])
def test_a_damaged_run_is_named_on_resume_and_left_alone(resumable: Path, tmp_path: Path, damage) -> None:
    """Items 12 and 13: the file and the damaged part named in one line, before Hydra writes."""
    run_dir = tmp_path / "run"
    shutil.copytree(resumable, run_dir)
    bad = damage(run_dir)
    before = snapshot(run_dir)
    refused([f"resume={run_dir}", "trainer.epochs=2"], tmp_path, str(bad))
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(("damage", "needle"), [
    (damage_metrics, "is not a metrics.csv written by defcon-train (UnicodeDecodeError"),
    (damage_position, "its 'position' entry is damaged"),
    (damage_rng, "its 'rng' entry is damaged"),
])
def test_the_cli_check_of_a_resume_names_the_damage(resumable: Path, tmp_path: Path, damage, needle: str) -> None:
    """What the CLI runs before Hydra (:func:`check_resume`), in process for the other parts."""
    from defcon_exp.run.plan import check_resume

    run_dir = tmp_path / "run"
    shutil.copytree(resumable, run_dir)
    bad = damage(run_dir)
    with pytest.raises(ValueError) as info:
        check_resume(str(run_dir), ["trainer.epochs=2"])
    assert str(bad) in str(info.value) and needle in str(info.value) and "\n" not in str(info.value)


def test_ctrl_c_twice_during_start_up_is_one_line(tmp_path: Path) -> None:
    """Item 12: at any moment of the start-up, two Ctrl-C end it with one line and exit 130."""
    for delay in (0.5, 2.0):
        run_dir = tmp_path / f"run{delay}"
        proc = subprocess.Popen([sys.executable, "-m", "defcon_exp.cli.train", *QUICK, f"hydra.run.dir={run_dir}"],
                                cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        own = [line for line in err.splitlines() if not line.startswith("[")]  # Hydra's log lines
        assert proc.returncode in (0, 130) and "Traceback" not in err, err[-3000:]
        if proc.returncode == 130:
            assert len(own) == 1 and ("Ctrl-C" in own[0] or "SIGINT" in own[0]), own
