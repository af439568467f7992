"""Find run dirs and read what each one recorded (``summary.json``, ``metrics.csv``,
``config.yaml``) without importing the engine or training code."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from defcon_exp.run_dir import LOCK_NAME, lock_holder

__all__ = ["RunRecord", "find_run_dirs", "last_error", "load_run", "read_summary"]

#: files any of which make a directory a run dir
RUN_MARKERS = ("summary.json", "metrics.csv", "config.yaml", ".hydra/config.yaml")
#: sub-directories of a run that are never runs themselves
NOT_RUNS = {".hydra", "tb", "checkpoints"}

STATUS_DONE = "done"
STATUS_RUNNING = "running"  # another process holds the run dir's lock
STATUS_INTERRUPTED = "interrupted"  # stopped with checkpoints/last.pt: resumable
STATUS_FAILED = "failed"  # stopped before its first checkpoint (or it was removed)
STATUS_UNFINISHED = "running/failed"  # kept for callers that lump the three together
#: per-epoch metrics.csv columns kept for the curves (val_* or, without a val split, test_*)
CURVE_COLUMNS = ("train_loss", "train_top1", "val_loss", "val_top1", "test_loss", "test_top1")


@dataclass
class RunRecord:
    """What one run dir says about itself. ``status`` is ``done`` when ``summary.json``
    exists, else ``running/failed`` (the test metrics are then None)."""

    path: Path
    status: str
    model: str
    scheduler: str | None
    seed: int | None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)
    curve_metric: str | None = None
    epochs_done: int = 0
    error: str | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    state: str = STATUS_FAILED  # done | running | interrupted | failed
    damaged: str | None = None  # why summary.json cannot be read: the report skips the run

    @property
    def done(self) -> bool:
        """Whether the run finished (wrote ``summary.json``)."""
        return self.status == STATUS_DONE

    @property
    def data(self) -> str:
        """The data set's name (``data.name``), ``?`` when the config does not say."""
        return str((self.config.get("data") or {}).get("name") or "?")

    @property
    def resume_command(self) -> str | None:
        """``defcon-train resume=<run dir>`` for an interrupted (resumable) run, else None."""
        return f"defcon-train resume={self.path}" if self.state == STATUS_INTERRUPTED else None

    @property
    def test_top1(self) -> float | None:
        """Final test top-1 (percent) from ``summary.json``."""
        return _num(self.summary.get("test", {}).get("top1"))

    @property
    def test_top5(self) -> float | None:
        """Final test top-5 (percent) from ``summary.json``."""
        return _num(self.summary.get("test", {}).get("top5"))

    @property
    def num_params(self) -> int | None:
        """Trainable parameters (``summary.json``)."""
        value = _num(self.summary.get("num_params"))
        return int(value) if value is not None else None

    @property
    def images_per_s(self) -> float | None:
        """Training throughput over the run (``summary.json``)."""
        return _num(self.summary.get("images_per_s"))


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


#: the groups of a run's config that the report reads (each a mapping when present)
CONFIG_BLOCKS = ("model", "data", "scheduler", "trainer")
#: the blocks of summary.json that hold metrics (each an object when present)
SUMMARY_BLOCKS = ("test", "val", "best_val")


def read_summary(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """``summary.json`` of ``run_dir`` (``{}`` when absent) and, when it cannot be a run
    summary (not JSON, not an object, a metrics block that is not an object, nested too deep),
    ``({}, why)`` naming the file."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        return {}, f"{path} is not readable JSON ({type(err).__name__}: {str(err)[:120]})"
    if not isinstance(data, dict):
        return {}, f"{path} is not a run summary (a JSON {type(data).__name__}, not an object)"
    for block in SUMMARY_BLOCKS:
        if data.get(block) is not None and not isinstance(data[block], dict):
            return {}, f"{path} is not a run summary (its {block!r} is {type(data[block]).__name__})"
    return data, None


def find_run_dirs(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Run dirs under ``roots`` (each root may itself be one), sorted, without duplicates.

    A run dir holds ``summary.json``, ``metrics.csv``, ``config.yaml`` or
    ``.hydra/config.yaml`` (a Hydra job that died before training); the search does
    not descend into a run dir, nor into ``.hydra``, ``tb`` or ``checkpoints``.
    """
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory")
        stack = [root]
        while stack:
            current = stack.pop()
            if any((current / name).is_file() for name in RUN_MARKERS):  # a run dir
                found.add(current.resolve())
                continue
            stack.extend(
                child
                for child in current.iterdir()
                if child.is_dir() and child.name not in NOT_RUNS and not child.is_symlink()
            )
    return sorted(found)


def _read_config(path: Path) -> dict[str, Any]:
    for candidate in (path / "config.yaml", path / ".hydra" / "config.yaml"):
        if candidate.is_file():
            container = OmegaConf.to_container(OmegaConf.load(candidate), resolve=False)
            return container if isinstance(container, dict) else {}
    return {}


def _metrics_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the run's ``metrics.csv`` (``[]`` when it does not exist)."""
    csv_path = path / "metrics.csv"
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _column_curve(rows: list[dict[str, str]], column: str | None) -> list[tuple[int, float]]:
    """``(epoch, value)`` pairs of ``column`` (:data:`CURVE_COLUMNS`, or the selection split's
    top-1: ``val_top1``, else ``test_top1``)."""
    curve: list[tuple[int, float]] = []
    for row in rows:
        value = _num(row.get(column)) if column else None
        if value is not None and row.get("epoch"):
            curve.append((int(row["epoch"]), value))
    return curve


def last_error(path: Path) -> str | None:
    """The last ``[ERROR]`` message of the run's ``train.log`` (why a run failed)."""
    log = path / "train.log"
    if not log.is_file():
        return None
    with contextlib.suppress(OSError):
        for line in reversed(log.read_text(errors="replace").splitlines()):
            if "[ERROR]" in line:
                return line.split(" - ", 1)[-1].strip()
    return None


def run_state(path: Path, done: bool) -> str:
    """done | running (lock held) | interrupted (``checkpoints/last.pt``) | failed."""
    if done:
        return STATUS_DONE
    if lock_holder(path / LOCK_NAME) is not None:
        return STATUS_RUNNING
    return STATUS_INTERRUPTED if (path / "checkpoints" / "last.pt").is_file() else STATUS_FAILED


def _model_name(config: dict[str, Any]) -> str:
    if not config.get("model"):
        return "unknown"
    attention = config["model"].get("attention", "none")
    return "resnet50" if attention in (None, "none") else str(attention)


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read one run dir; never raises for an unfinished or damaged run (see ``error``)."""
    path = Path(path)
    error = None
    config: dict[str, Any] = {}
    try:
        config = _read_config(path)
    except Exception as err:  # a half-written config must not stop the report
        error = f"config.yaml: {err}"
    if any(config.get(k) is not None and not isinstance(config[k], dict) for k in CONFIG_BLOCKS):
        config, error = {}, "config.yaml: not a defcon-train config (a group is not a mapping)"
    summary, damaged = read_summary(path)
    error = damaged or error
    try:
        rows = _metrics_rows(path)
        metric = next((m for m in ("val_top1", "test_top1") if rows and m in rows[0]), None)
        curve, epochs = _column_curve(rows, metric), len(rows)
    except (OSError, csv.Error, ValueError) as err:
        rows, curve, metric, epochs, error = [], [], None, 0, f"metrics.csv: {err}"
    status = STATUS_DONE if summary.get("test") else STATUS_UNFINISHED
    state = run_state(path, status == STATUS_DONE)
    if state == STATUS_FAILED and error is None:
        error = last_error(path)
    try:
        curves = {c: _column_curve(rows, c) for c in CURVE_COLUMNS if rows and c in rows[0]}
    except ValueError:
        curves = {}
    model = str(summary.get("model") or _model_name(config))
    scheduler = (config.get("scheduler") or {}).get("name")
    seed = config.get("seed")
    return RunRecord(
        path=path, status=status, model=model, seed=int(seed) if isinstance(seed, int) else None,
        scheduler=str(scheduler) if scheduler is not None else None, config=config,
        summary=summary, curve=curve, curve_metric=metric, epochs_done=epochs, error=error,
        curves=curves, state=state, damaged=damaged,
    )
