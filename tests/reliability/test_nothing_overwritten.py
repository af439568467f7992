"""Issue 22, items 1 and 2: a kill in the test phase is resumed into a complete summary, and
no command writes through a symlink out of the run dir it was given (another run's files
stay untouched, its lock or not)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from tiny_net import TINY_NET_ARGS

from defcon_exp.engine.hooks import StopRun
from defcon_exp.run.checkpoint_tools import inspect_checkpoint
from defcon_exp.run.job import SweepJobError, run_job
from defcon_exp.run.lock import hold_run_dir
from defcon_exp.run.objective import sweeper_return
from defcon_exp.run.train import train


def make_cfg(*overrides: str) -> DictConfig:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY_NET_ARGS, "trainer.epochs=1", *overrides])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(make_cfg(), run_dir=run_dir)
    return run_dir


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed) -> its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != ".lock"
    }


def test_a_kill_in_the_test_phase_resumes_into_the_same_summary(finished: Path, tmp_path: Path) -> None:
    """SIGKILL after the last epoch's checkpoint, before summary.json: the resume runs the test
    and writes the summary with its val block (the sweeper's objective reads it)."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    (run_dir / "summary.json").unlink()  # what the kill leaves: last.pt of the last epoch
    summary = train(make_cfg(f"resume={run_dir}"))
    want = json.loads((finished / "summary.json").read_text())
    assert summary["val"] == want["val"] and summary["test"] == want["test"]
    assert summary["best_val"] == want["best_val"] and summary["status"] == "finished"
    assert sweeper_return(summary, "val/top1_final") == want["val"]["top1"]
    assert json.loads((run_dir / "summary.json").read_text())["val"] == want["val"]


def test_a_run_a_hook_stopped_stays_stopped_after_a_test_phase_kill(tmp_path: Path) -> None:
    """A pruned trial killed in its test phase: the resume tests it, it does not train on."""

    def prune(epoch: int, *_: object) -> None:
        raise StopRun(f"pruned after epoch {epoch}", status="pruned")

    run_dir = tmp_path / "run"
    first = train(make_cfg("trainer.epochs=3"), run_dir=run_dir, epoch_hooks=[prune])
    (run_dir / "summary.json").unlink()
    summary = train(make_cfg("trainer.epochs=3", f"resume={run_dir}"))
    assert (summary["status"], summary["epochs_done"]) == ("pruned", 1)
    assert summary["val"] == first["val"] and summary["test"] == first["test"]


def test_a_sweep_job_with_a_summary_lacking_its_objective_is_one_line(finished: Path, tmp_path: Path) -> None:
    """What the kill left before the fix (a summary without val): each relaunch of the sweep job
    names the file and the way out, which then completes the summary."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["val"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    cfg = make_cfg("resume=auto")
    with pytest.raises(SweepJobError) as info:
        run_job(cfg, run_dir, 0, [])
    message = str(info.value).splitlines()[0]
    assert f"mv {run_dir / 'summary.json'}" in message and "val/top1_final" in message
    (run_dir / "summary.json").rename(run_dir / "summary.json.bad")
    assert run_job(cfg, run_dir, 0, [])["val"] == json.loads((finished / "summary.json").read_text())["val"]


def two_runs(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "A", tmp_path / "B"
    shutil.copytree(finished, a)
    shutil.copytree(finished, b)
    return a, b


@pytest.mark.parametrize("link", ["checkpoints/last.pt", "checkpoints"])
def test_a_symlink_into_another_run_is_refused(finished: Path, tmp_path: Path, link: str) -> None:
    a, b = two_runs(finished, tmp_path)
    shutil.rmtree(a / link) if (a / link).is_dir() else (a / link).unlink()
    (a / link).symlink_to(b / link)
    before_a, before_b = fingerprint(a), fingerprint(b)
    with hold_run_dir(b):  # B's own job runs: its lock must not be passed by A's resume
        with pytest.raises(ValueError) as info:
            train(make_cfg("trainer.epochs=3", f"resume={a}"))
        message = str(info.value)
        assert "\n" not in message and str(a / link) in message and "outside its run dir" in message
        with pytest.raises(ValueError):  # a checkpoint path through the link: the same
            train(make_cfg("trainer.epochs=3", f"resume={a / 'checkpoints' / 'last.pt'}"))
    assert fingerprint(b) == before_b and fingerprint(a) == before_a


def test_inspect_never_writes_into_the_linked_run(finished: Path, tmp_path: Path) -> None:
    a, b = two_runs(finished, tmp_path)
    (a / "checkpoints" / "best.pt").unlink()
    (a / "checkpoints" / "best.pt").symlink_to(b / "checkpoints" / "best.pt")
    with pytest.raises(ValueError, match="outside its run dir"):
        inspect_checkpoint(a / "checkpoints" / "best.pt", n_images=4)
    loose = tmp_path / "downloads"  # a link outside any run dir: its output goes beside it
    loose.mkdir()
    (loose / "model.pt").symlink_to(b / "checkpoints" / "best.pt")
    stats = inspect_checkpoint(loose / "model.pt", n_images=4)
    assert Path(stats["written_to"]).parent == loose / "inspect"
    assert not (a / "inspect").exists() and not (b / "inspect").exists()


def test_resume_of_a_missing_path_creates_nothing_through_the_api(tmp_path: Path) -> None:
    """Item 10 below the CLI: train(resume=<missing>) refuses without creating the path."""
    with pytest.raises(FileNotFoundError, match="no such run dir"):
        train(make_cfg(f"resume={tmp_path / 'gone' / 'run'}"))
    assert not (tmp_path / "gone").exists()
