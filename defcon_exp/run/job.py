"""One ``defcon-train`` job under Hydra: train, and turn what stops it into an exit code
(single run) or a failed sweep job that lets the other jobs go on (``-m``)."""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from defcon_exp.config import ConfigError
from defcon_exp.data import DatasetNotFoundError
from defcon_exp.engine import distributed
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.preemption import TrainingInterrupted
from defcon_exp.engine.run_dir import output_anchor
from defcon_exp.engine.run_state import CheckpointWriteError, NonFiniteStateError
from defcon_exp.run.objective import epoch_hooks
from defcon_exp.run.train import train

__all__ = ["USER_ERRORS", "SweepJobError", "run_job"]

log = logging.getLogger("defcon_exp.train")

#: Errors the user can fix; the CLI prints their message without a traceback and exits 1.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DatasetNotFoundError,
    FileNotFoundError,
    NonFiniteLossError,
    NonFiniteStateError,
    CheckpointWriteError,
    ValueError,
    distributed.DistributedError,
)


class SweepJobError(CompactHydraException):
    """One job of a sweep (``-m``) failed. Raised instead of ``sys.exit`` so that Hydra marks
    just that job as failed and the launcher runs the others (a ``SystemExit`` in a joblib
    worker would abort the whole sweep); once every job has ended, Hydra prints the first
    failed job's message (no traceback) and exits 1. Picklable: it crosses process borders."""


def run_job(
    cfg: DictConfig, output_dir: Path, job_num: int | None, overrides: Sequence[str]
) -> dict[str, Any]:
    """Train ``cfg`` as a Hydra job writing to ``output_dir`` (``job_num``: its number in a
    sweep, None for a single run); ``overrides``: the job's command-line overrides. Returns
    the summary; exits (single run) or raises :class:`SweepJobError` (sweep) on failure."""
    multirun = job_num is not None
    where = "" if distributed.is_main() else f" (rank {distributed.rank()})"
    try:
        explicit = bool(cfg.resume) and cfg.resume != "auto"
        if explicit and multirun:
            raise ConfigError(
                f"resume={cfg.resume!r} is invalid with -m: resume one run at a time, or "
                "re-launch the sweep with resume=auto and the same hydra.sweep.dir"
            )
        if multirun and cfg.trainer.get("keep_checkpoints") == "auto":
            cfg = cfg.copy()  # a sweep's finished jobs are skipped by resume=auto: slim them
            cfg.trainer.keep_checkpoints = "last_slim"
        return train(
            cfg,
            None if explicit else output_dir,
            restart_incomplete=cfg.resume == "auto",
            overrides=overrides if explicit else None,
            epoch_hooks=epoch_hooks(cfg.search) if distributed.is_main() else (),
        )
    except TrainingInterrupted as err:  # Ctrl-C / SIGTERM stop the whole sweep, too
        if distributed.is_main():
            print(f"defcon-train: interrupted: {err}", file=sys.stderr)
        handler = signal.getsignal(err.signum)
        if err.signum not in (signal.SIGTERM, signal.SIGINT) and callable(handler):
            handler(err.signum, None)  # submitit's: requeues this job (resume=auto continues it)
        if multirun:
            print(
                "defcon-train: to continue the whole sweep, run the same command with resume=auto "
                f"hydra.sweep.dir={output_dir.parent}",
                file=sys.stderr,
            )
        sys.exit(err.exit_code)
    except USER_ERRORS as err:
        log.debug("stopped by %s", type(err).__name__, exc_info=True)
        if multirun:
            raise _sweep_job_error(output_dir, job_num, str(err)) from err
        log.error("%s", err)  # into train.log too: a failed start says why
        if not cfg.resume and distributed.is_main():
            remove_failed_start(output_dir)
        print(f"defcon-train: error{where}: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        if not multirun:
            raise  # Hydra prints the traceback
        log.exception("job crashed")  # the traceback goes to the job's train.log
        raise _sweep_job_error(
            output_dir,
            job_num,
            f"{type(err).__name__}: {err} (traceback in {output_dir / 'train.log'})",
        ) from err


#: what Hydra and the run-dir lock put into a run dir before the run records anything
STARTUP_FILES = {".hydra", "train.log", ".lock"}


def remove_failed_start(run_dir: Path) -> bool:
    """Delete a fresh run's dir that holds nothing but :data:`STARTUP_FILES` (a start that
    failed on a bad value or missing data), and its date folder if that is left empty, so a
    failed start leaves no ``outputs/DATE/TIME`` behind (``defcon-report`` would list it as
    a failed run). A dir with anything else in it is kept. Returns whether it was removed."""
    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return False
    if not names <= STARTUP_FILES:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    anchor = output_anchor()
    # the empty folders this start created (outputs/DATE, and outputs/ itself when it did not
    # exist before: remember_output_anchor); without a note only a date folder
    while parent != parent.parent and (
        parent.is_relative_to(anchor) and parent != anchor if anchor else parent.name[:4].isdigit()
    ):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent
        if anchor is None:
            break
    return not run_dir.exists()



def _sweep_job_error(output_dir: Path, job: int | None, reason: str) -> SweepJobError:
    """Report a failed sweep job now (stderr and its train.log) and build the error that
    Hydra re-raises, with a pointer to the other jobs, once the whole sweep has ended."""
    message = f"job {job} ({output_dir}) failed: {reason}"
    log.error("%s", message)
    print(f"defcon-train: error: {message} (the other jobs go on)", file=sys.stderr)
    return SweepJobError(
        f"defcon-train: error: {message}\nThe sweep's other jobs ran to the end; each failed job "
        f"printed its error when it failed. `defcon-report {output_dir.parent}` lists the runs, "
        "failed ones without a summary.json."
    )
