"""The end of a ``-m`` sweep: where it wrote, one line per job, and the report command.

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks.sweep_summary`` in
``conf/hydra/default.yaml``). It reads only what the jobs wrote (``summary.json``,
``metrics.csv``, ``.hydra/overrides.yaml``), so it works after any launcher (joblib and
submitit workers included) and imports no training code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from defcon_exp.analysis.runs import RunRecord, load_run
from defcon_exp.rates import SPEED_NOTE, format_rate
from defcon_exp.run.record import read_overrides
from defcon_exp.run.run_label import run_label, sweep_keys

__all__ = ["SweepSummary", "sweep_table"]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The job dirs (``<sweep dir>/<job number>``, or any sub-dir with a ``.hydra`` record)."""
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _number(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(run: RunRecord, keys: set[str] | None) -> list[str]:
    overrides = read_overrides(run.path) or []
    label = run_label(run.model, overrides, None) if keys is None else "_".join(
        [run.model, *(o for o in overrides if o.partition("=")[0] in keys - {"model"})])
    summary = run.summary
    epochs = summary.get("epochs_done", run.epochs_done)
    total = summary.get("epochs") or (run.config.get("trainer") or {}).get("epochs")
    best_val = (summary.get("best_val") or {}).get("top1")
    rate = summary.get("images_per_s")
    return [run.path.name, label, run.state, f"{epochs}/{total or '?'}",
            _number(run.test_top1), _number(best_val), format_rate(rate)]


def sweep_table(sweep_dir: str | Path) -> str:
    """The jobs of ``sweep_dir`` as a fixed-width table (job, run name, status, epochs, test
    top-1, best val top-1, training images/s)."""
    sweep_dir = Path(sweep_dir)
    keys = sweep_keys(sweep_dir)
    head = ["job", "run", "status", "epochs", "test top-1", "best val top-1", "img/s"]
    rows = [head, *(_row(load_run(p), keys) for p in _job_dirs(sweep_dir))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    )


class SweepSummary(Callback):
    """Hydra callback: at the end of a ``-m`` sweep, print its dir, the jobs table and the
    ``defcon-report`` command (stdout)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        jobs: Sequence[Path] = _job_dirs(sweep_dir)
        if not jobs:
            return
        what = ("the search's report (trials, best trial and its command, plots)"
                if (sweep_dir / "optuna.db").is_file()  # hydra/sweeper=optuna's study
                else "compare them (mean ± std over seeds, Welch's t-test, curves)")
        print("\n".join([
            f"defcon-train: sweep done: {len(jobs)} jobs in {sweep_dir}",
            sweep_table(sweep_dir),
            f"({SPEED_NOTE})",
            f"{what}: defcon-report {sweep_dir}",
        ]), file=sys.stdout, flush=True)
