"""Run records: ``metrics.csv`` (one row per epoch), TensorBoard scalars + HParams, and
``summary.json``. All writers are safe to reopen on resume."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from defcon_exp.engine.atomic import atomic_write
from defcon_exp.rates import first_line


def read_metrics_csv(path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """``(columns, rows)`` of a run's ``metrics.csv``, or one line naming the damaged file.

    Raises:
        ValueError: not UTF-8 text, not a CSV, or a row without an integer ``epoch``.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fieldnames = list(reader.fieldnames or []) or None
            rows = list(reader)
        for row in rows:
            int(row["epoch"])
    except (UnicodeDecodeError, csv.Error, KeyError, ValueError, TypeError) as err:
        reason = first_line(err)
        raise ValueError(
            f"{path} is not a metrics.csv written by defcon-train ({type(err).__name__}: "
            f"{reason[:100]}); move it away (mv {path} {path}.bad) and resume: new rows start "
            "after the checkpoint's epoch (TensorBoard keeps the earlier curves)"
        ) from None
    return fieldnames, rows


class MetricsCSV:
    """``metrics.csv`` with one row per epoch and the header written once.

    On resume, rows for epochs after ``resume_epoch`` (left by a crash after the last
    checkpoint) are dropped and new rows are appended under the existing header.
    """

    def __init__(self, path: str | os.PathLike, resume_epoch: int | None = None) -> None:
        self.path = Path(path)
        self.fieldnames: list[str] | None = None
        if self.path.exists() and resume_epoch is not None:
            self.fieldnames, rows = read_metrics_csv(self.path)
            rows = [row for row in rows if int(row["epoch"]) <= resume_epoch]
            if self.fieldnames:
                _atomic_write_text(self.path, _csv_text(self.fieldnames, rows))
        elif self.path.exists():
            self.path.unlink()

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one epoch's row (the first row fixes the columns)."""
        new_file = self.fieldnames is None
        if new_file:
            self.fieldnames = list(row)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fieldnames, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _wait_for_a_later_file_name(log_dir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name is
    ``events.out.tfevents.<second>.<host>.<pid>.<n>`` with a per-process counter ``n``. A
    writer opened in the same second as an existing file (a resume inside the same process,
    as in tests) can sort before it ("...10" < "...9"), and its purge would then drop the
    earlier curve. Waiting for the next second makes the new name sort last."""
    now = time.time()
    if any(log_dir.glob(f"events.out.tfevents.{int(now):010d}.*")):
        time.sleep(int(now) + 1 - now)


class TensorBoardLogger(SummaryWriter):
    """A SummaryWriter on ``log_dir`` whose x axis is always the global optimiser step.

    ``purge_step`` (the resumed global step + 1) discards events a crashed run wrote after its
    last checkpoint, so resumed curves stay continuous.
    """

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None) -> None:
        _wait_for_a_later_file_name(Path(log_dir))
        super().__init__(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log each ``tag -> value`` at ``step``."""
        for tag, value in values.items():
            self.add_scalar(tag, value, global_step=step)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        """Log the distribution of ``values`` (any shape) at ``step``."""
        self.add_histogram(tag, values.detach().float(), global_step=step)

    def hparams(self, hparams: Mapping[str, Any], metric_tags: Mapping[str, Any]) -> None:
        """Write an HParams record into this run's own event file (for sweep comparison). Its
        metrics are existing scalar tags (the HPARAMS table shows their last values), so no
        single-point duplicate charts are written."""
        clean = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()
        }
        exp, ssi, sei = hparams_summary(clean, dict.fromkeys(metric_tags, 0.0))
        file_writer = self._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically (NaN/inf become null)."""
    path = Path(path)
    _atomic_write_text(path, json.dumps(_json_safe(payload), indent=2) + "\n")
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _csv_text(fieldnames: list[str], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))
