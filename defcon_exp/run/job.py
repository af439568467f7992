"""One ``defcon-train`` job under Hydra: train, and turn what stops it into an exit code
(single run) or a failed sweep job that lets the other jobs go on (``-m``)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from defcon_exp.config import ConfigError
from defcon_exp.data import DatasetNotFoundError
from defcon_exp.engine import distributed
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.preemption import TrainingInterrupted
from defcon_exp.engine.run_state import CheckpointWriteError, NonFiniteStateError
from defcon_exp.run.lock import hold_run_dir
from defcon_exp.run.objective import epoch_hooks, sweeper_return
from defcon_exp.run.train import train
from defcon_exp.run_dir import output_anchor, resume_kind, resume_run_dir

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
    if multirun:
        stop_when_the_sweep_dies()
    with contextlib.ExitStack() as held:
        explicit = resume_kind(cfg.resume) == "path"
        if distributed.is_main():  # before anything is logged or written into the dir
            _hold_and_record(held, cfg, output_dir, overrides, job_num, explicit and not multirun)
        return _run_held(cfg, output_dir, job_num, overrides, multirun, explicit)


def _hold_and_record(held: contextlib.ExitStack, cfg: DictConfig, output_dir: Path,
                     overrides: Sequence[str], job_num: int | None, explicit: bool) -> None:
    """Take the job's run dir lock for the whole job (before Hydra's record or a log line
    goes there: ``hydra.output_subdir`` is null), then write its ``.hydra/`` record
    (:mod:`defcon_exp.run.record`): a fresh start's, or one resume entry; a finished or a
    used dir (the plan refuses it) gets nothing. A lock that cannot be taken: nothing may be
    written into the dir (:func:`_refused_without_the_lock`)."""
    from hydra.core.hydra_config import HydraConfig

    from defcon_exp.run.plan import used_run_dir_error
    from defcon_exp.run.record import append_resume, write_start_record

    try:
        run_dir = resume_run_dir(cfg.resume) if explicit else output_dir
        held.enter_context(hold_run_dir(run_dir, create=not explicit))
    except (ConfigError, ValueError, OSError) as err:
        _refused_without_the_lock(str(err), output_dir, job_num)
    if not HydraConfig.initialized():
        return
    auto = resume_kind(cfg.resume) == "auto"
    if explicit or (auto and (run_dir / "checkpoints" / "last.pt").is_file()):
        if not (auto and (run_dir / "summary.json").is_file()):
            append_resume(run_dir, overrides)
    elif auto or used_run_dir_error(run_dir) is None:
        write_start_record(run_dir, cfg, HydraConfig.instance().cfg, overrides)


def _refused_without_the_lock(reason: str, output_dir: Path, job_num: int | None) -> NoReturn:
    """Another process holds the job's dir (or it cannot be locked): one line on stderr and
    nothing logged into the dir (its ``train.log`` is the holder's)."""
    for handler in list(logging.getLogger().handlers):  # Hydra's file handler: the holder's log
        if isinstance(handler, logging.FileHandler):
            logging.getLogger().removeHandler(handler)
            handler.close()
    message = reason if job_num is None else f"job {job_num} ({output_dir}) was not run: {reason}"
    print(f"defcon-train: error: {message}", file=sys.stderr, flush=True)
    if job_num is not None:  # a sweep job
        raise SweepJobError(f"defcon-train: error: {message}")
    sys.exit(1)


def _run_held(cfg: DictConfig, output_dir: Path, job_num: int | None, overrides: Sequence[str],
              multirun: bool, explicit: bool) -> dict[str, Any]:
    """:func:`run_job` once the run dir's lock is held (rank 0)."""
    try:
        if explicit and multirun:
            raise ConfigError(
                f"resume={cfg.resume!r} is invalid with -m: resume one run at a time, or "
                "re-launch the sweep with resume=auto and the same hydra.sweep.dir"
            )
        if multirun and cfg.trainer.get("keep_checkpoints") == "auto":
            cfg = cfg.copy()  # a sweep's finished jobs are skipped by resume=auto: slim them
            cfg.trainer.keep_checkpoints = "last_slim"
        summary = train(
            cfg,
            None if explicit else output_dir,
            restart_incomplete=resume_kind(cfg.resume) == "auto",
            overrides=overrides if explicit else None,
            epoch_hooks=epoch_hooks(cfg.search) if distributed.is_main() else (),
        )
        run_dir = resume_run_dir(cfg.resume) if explicit else output_dir
        _check_objective(summary, cfg.search.objective, run_dir / "summary.json")
        return summary
    except TrainingInterrupted as err:  # Ctrl-C / SIGTERM stop the whole sweep, too
        _exit_interrupted(err, output_dir, multirun)
    except KeyboardInterrupt:  # Ctrl-C before fit() handles signals, or a second one in it
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl-C while tidying up
        fresh = resume_kind(cfg.resume) == "fresh" and not multirun and distributed.is_main()
        print(f"defcon-train: {_interrupted(output_dir, fresh)}", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except USER_ERRORS as err:
        log.debug("stopped by %s", type(err).__name__, exc_info=True)
        if multirun:
            raise _sweep_job_error(output_dir, job_num, str(err), _trial(cfg)) from err
        log.error("%s", err)  # into train.log too: a failed start says why
        if resume_kind(cfg.resume) == "fresh" and distributed.is_main():
            remove_failed_start(output_dir)
        where = "" if distributed.is_main() else f" (rank {distributed.rank()})"
        print(f"defcon-train: error{where}: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        if not multirun:
            raise  # Hydra prints the traceback
        trial = _trial(cfg)
        if trial is None:
            log.exception("job crashed")  # the traceback goes to the job's train.log
        else:  # a search trial: train.log only; the console gets the trial's one line
            _traceback_to_files("job crashed")
        reason = f"{type(err).__name__}: {err} (traceback in {output_dir / 'train.log'})"
        raise _sweep_job_error(output_dir, job_num, reason, trial) from err


def _check_objective(summary: dict[str, Any], objective: Any, path: Path) -> None:
    """A summary (``path``) lacking the sweeper's objective (written after a kill in the test
    phase by a version before issue 22's fix): one line naming the file and the way out."""
    try:
        sweeper_return(summary, objective)
    except ValueError as err:
        raise ConfigError(
            f"{path}: {err}; move it away (mv {path} {path}.bad) and run the command again: the "
            "run's last checkpoint repeats the evaluation and writes a complete summary"
        ) from None


_watching: list[int] = []  # the sweep process a worker watches (set once per worker)


def stop_when_the_sweep_dies(poll_s: float = 0.5) -> None:
    """In a joblib (loky) worker: SIGTERM this worker when the sweep's main process is gone
    (SIGKILLed: it forwards nothing), so the running job checkpoints and stops like a
    pre-emption instead of training on as an orphan. A thread polls ``os.getppid()``; the
    kernel's ``PR_SET_PDEATHSIG`` would fire when the *thread* that started the worker ends."""
    if _watching or type(multiprocessing.current_process()).__name__ != "LokyProcess":
        return
    _watching.append(os.getppid())

    def watch() -> None:
        while os.getppid() == _watching[0]:
            time.sleep(poll_s)
        log.warning("the sweep's main process %d is gone: stopping this job", _watching[0])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="defcon-sweep-watch", daemon=True).start()


def _exit_interrupted(err: TrainingInterrupted, output_dir: Path, multirun: bool) -> NoReturn:
    """Exit after a signal stopped the run with a checkpoint (hand a requeue signal on)."""
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
    if _watching and os.getppid() != _watching[0]:  # an orphaned worker: nobody to report to
        logging.shutdown()
        os._exit(err.exit_code)
    sys.exit(err.exit_code)


def _interrupted(run_dir: Path, fresh: bool) -> str:
    """The one line after a Ctrl-C that fit() did not turn into a checkpoint (a fresh start's
    dir that holds nothing yet is removed)."""
    if fresh and remove_failed_start(run_dir):
        return "interrupted (Ctrl-C) during start-up: nothing was trained or kept"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return (
            f"aborted (Ctrl-C) without a new checkpoint; resume from the last one with: "
            f"defcon-train resume={run_dir}"
        )
    return (
        f"aborted (Ctrl-C) before the first checkpoint of {run_dir}; start it over there with "
        "the same command plus resume=auto"
    )


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
    if anchor is not None and not run_dir.absolute().is_relative_to(anchor):
        anchor = None  # noted for another output root (an API caller's earlier start)
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


def _traceback_to_files(message: str) -> None:
    """Log ``message`` with the current traceback to the file handlers only (the job's
    train.log); to every handler when there is none (``hydra/job_logging=none``)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), sys.exc_info())
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        log.exception(message)
    for handler in files:
        handler.handle(record)


def _trial(cfg: DictConfig) -> int | None:
    """The Optuna trial number of a search job (``hydra/sweeper=optuna``), else None."""
    return OmegaConf.select(cfg, "search.trial_number", default=None)


def _sweep_job_error(output_dir: Path, job: int | None, reason: str,
                     trial: int | None = None) -> SweepJobError:
    """Report a failed sweep job now (stderr and its train.log) and build the error that
    Hydra re-raises, with a pointer to the other jobs, once the whole sweep has ended. A
    search trial's error is logged once (console and train.log); the sweeper records it and
    decides whether the search goes on (``max_failure_rate``), so nothing more is said here."""
    if trial is not None:
        log.error("trial %d (%s) failed: %s", trial, output_dir, reason)
        return SweepJobError(reason)
    message = f"job {job} ({output_dir}) failed: {reason}"
    log.error("%s", message)
    print(f"defcon-train: error: {message} (the other jobs go on)", file=sys.stderr)
    return SweepJobError(
        f"defcon-train: error: {message}\nThe sweep's other jobs ran to the end; each failed job "
        f"printed its error when it failed. `defcon-report {output_dir.parent}` lists the runs, "
        "failed ones without a summary.json."
    )
