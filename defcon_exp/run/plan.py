"""Decide once what a run does: start fresh, resume a checkpoint, or nothing (finished).

:func:`plan_run` is the only place that reads a run dir's checkpoint to decide; it loads the
checkpoint once and hands its state on (``fit()`` is the only place weights are restored).
The caller holds the run dir's lock (:mod:`defcon_exp.run.lock`) while it plans and runs.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.engine.checkpoint import find_checkpoint, load_checkpoint
from defcon_exp.engine.keep import SLIM_KEY
from defcon_exp.engine.run_state import check_resume_state
from defcon_exp.engine.writers import read_metrics_csv
from defcon_exp.keys import PLACEMENT_KEYS, flat_items
from defcon_exp.rates import first_line
from defcon_exp.run.record import read_overrides
from defcon_exp.run.stored import apply_overrides, schema_config
from defcon_exp.run_dir import is_used_run_dir, resume_kind, resume_run_dir

__all__ = [
    "RunPlan",
    "check_config_changes",
    "check_resume",
    "plan_resume",
    "plan_run",
    "remove_stale_temp_files",
    "resume_checkpoint",
    "used_run_dir_error",
]

log = logging.getLogger("defcon_exp.train")

#: keys whose change would load the checkpoint into another network: resuming refuses them
RESUME_FORBIDDEN_PREFIXES = ("model.", "data.name", "data.num_classes")
#: keys fixing the data order: a mid-epoch checkpoint can only resume with them unchanged
MID_EPOCH_FIXED_PREFIXES = ("data.", "seed")
#: keys a resumed run may change besides the placement keys: how long it trains, what it
#: records and keeps, how its kernels compute (same network, same weights, same data order)
RESUME_ADJUSTABLE = frozenset({
    "trainer.epochs",
    "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps",
    "trainer.keep_checkpoints",
    "trainer.num_threads",
    "trainer.histograms_every_n_epochs",
    "trainer.histogram_images",
    "trainer.channels_last",
    "trainer.compile",
    "model.kernels",  # ATen or Triton kernels: the same network and weights
})
#: keys that may differ between a checkpoint's config and the resumed one without a warning
RESUME_NEUTRAL = PLACEMENT_KEYS | RESUME_ADJUSTABLE


@dataclass
class RunPlan:
    """What :func:`defcon_exp.run.train.train` does. ``state``: the loaded checkpoint (resume);
    ``summary``: the finished run's ``summary.json`` (then nothing is trained)."""

    cfg: DictConfig
    run_dir: Path
    checkpoint: Path | None = None
    state: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None


def _no_checkpoint_error(run_dir: Path, what: str) -> ConfigError:
    # the original command's overrides (.hydra/overrides.yaml): shown, never run
    overrides = read_overrides(run_dir)
    shown = "<the original overrides>" if overrides is None else " ".join(
        o for o in overrides if not o.startswith("resume"))
    return ConfigError(
        f"{what}: {run_dir} stopped before its first checkpoint (no checkpoints/last.pt), so "
        f"there is nothing to resume; start it over in the same dir with: defcon-train "
        f"{shown} hydra.run.dir={run_dir} resume=auto".replace("  ", " ")
    )


def _not_extendable(run_dir: Path, resume: str, what: str) -> ConfigError:
    return ConfigError(
        f"resume={resume!r} is invalid: {run_dir} finished and trainer.keep_checkpoints {what} "
        "(no optimiser state), so it cannot be extended exactly; start a new run with the "
        "epochs you want (add trainer.keep_checkpoints=all to keep a finished run extendable); "
        f"its final weights serve defcon-eval ckpt={run_dir}"
    )


def resume_checkpoint(resume: str) -> Path:
    """``resume=`` -> the checkpoint file, or one line saying why there is none and what to do
    (nothing is created: a missing path stays missing)."""
    path = Path(resume).expanduser()
    try:
        exists = path.exists()
    except OSError as err:  # a name too long for the file system
        raise ConfigError(f"resume={resume!r} is invalid: {err.strerror}") from None
    if not exists:
        raise ConfigError(
            f"resume={resume!r} is invalid: no such run dir or checkpoint; pass the dir of an "
            "earlier run (it holds checkpoints/last.pt), or leave resume out to start a new run"
        )
    if path.is_dir() and not (path / "checkpoints" / "last.pt").is_file() and not (
        path / "last.pt"
    ).is_file():
        if (path / "summary.json").is_file():
            raise _not_extendable(path.resolve(), resume, "kept only best.pt")
        if not (path / ".hydra").is_dir() and not is_used_run_dir(path):
            raise ConfigError(
                f"resume={resume!r} is invalid: {path.resolve()} is not a run dir (no "
                "checkpoints/last.pt); pass the dir of an earlier run"
            )
        raise _no_checkpoint_error(path.resolve(), f"resume={resume!r} is invalid")
    return find_checkpoint(path)


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete checkpoint temp files a killed write left (``checkpoints/.NAME.pt.*.tmp``).
    Safe only while holding the run dir's lock (no live writer of this run)."""
    removed = []
    for tmp in (run_dir / "checkpoints").glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.info("removed %d temp file(s) of an interrupted checkpoint write", len(removed))
    return removed


def check_config_changes(
    stored: DictConfig, cfg: DictConfig, ckpt: Path, mid_epoch: bool = False
) -> None:
    """Refuse changes that alter the network (``model.*``, data name/classes) or, inside an
    epoch, the data order; warn on the rest (except :data:`RESUME_NEUTRAL` keys). ``stored``:
    the checkpoint's config merged onto the schema (:func:`~defcon_exp.run.stored.schema_config`),
    so a key the run's version did not have yet (``model.arch`` in a run from before it
    existed) counts as its default, which is what that run used."""
    before = dict(flat_items(OmegaConf.to_container(stored, resolve=True)))
    after = dict(flat_items(OmegaConf.to_container(cfg, resolve=True)))
    changed = sorted(
        k for k in set(before) | set(after) if before.get(k) != after.get(k) and k not in RESUME_NEUTRAL
    )
    forbidden = [k for k in changed if k.startswith(RESUME_FORBIDDEN_PREFIXES)]

    def diffs(keys: list[str]) -> str:
        return ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys)

    if mid_epoch:
        order = [k for k in changed if k.startswith(MID_EPOCH_FIXED_PREFIXES) and k not in forbidden]
        if order:
            raise ConfigError(
                f"resume={str(cfg.resume)!r} is invalid: {ckpt} was saved inside an epoch and "
                f"skipping its finished batches needs the same data order ({diffs(order)})"
            )
    if forbidden:
        raise ConfigError(
            f"resume={str(cfg.resume)!r} is invalid: the config differs from {ckpt}'s in keys "
            f"that change the model ({diffs(forbidden)}); resume with the original values or "
            "start a new run"
        )
    for key in changed:
        log.warning("resume: %s changed from %r to %r", key, before.get(key), after.get(key))


def check_resume(resume: str, overrides: Sequence[str]) -> Path:
    """The CLI's check of ``resume=<path>`` with the command line's ``overrides``, before Hydra
    writes into the run: every refusal of :func:`plan_resume`; the run dir to lock."""
    plan_resume(OmegaConf.create({"resume": resume}), overrides, quiet=True)
    return resume_run_dir(resume_checkpoint(resume))


def plan_resume(cfg: DictConfig, overrides: Sequence[str] | None, quiet: bool = False) -> RunPlan:
    """``resume=<run dir or checkpoint>``. With ``overrides`` (the command line) the config is
    the checkpoint's own plus those value overrides; without, ``cfg`` as given (checked
    against the checkpoint's). ``quiet``: a check only, nothing said."""
    ckpt = resume_checkpoint(str(cfg.resume))
    state = load_checkpoint(ckpt)
    if "optimizer" not in state and state.get(SLIM_KEY):
        run_dir = resume_run_dir(ckpt)
        summary = _finished_summary(run_dir)
        epochs = _requested_epochs(cfg, overrides, state)
        if summary is not None and epochs <= int(state.get("epoch", 0)):
            _say("" if quiet else f"{run_dir} already finished ({state['epoch']} epochs, summary.json written): "
                 "nothing to do")
            return RunPlan(cfg, run_dir, ckpt, summary=summary)
        raise _not_extendable(run_dir, str(cfg.resume), "slimmed its last.pt")
    if "optimizer" not in state:
        raise ConfigError(
            f"resume={cfg.resume!r} is invalid: {ckpt.name} holds weights only (best.pt is for "
            f"evaluation); resume from the run dir: resume={resume_run_dir(ckpt)}"
        )
    stored = schema_config(state["config"], str(ckpt))  # refuses code keys in the stored config
    if overrides is not None:
        resumed = copy.deepcopy(stored)  # ``stored`` stays the checkpoint's, to compare with
        resumed.resume = cfg.resume
        cfg = apply_overrides(resumed, overrides, "when resuming")
        validate_config(cfg)
    check_config_changes(stored, cfg, ckpt, state.get("position") is not None)
    check_resume_state(state, str(ckpt))
    run_dir = resume_run_dir(ckpt)
    _finished_summary(run_dir)  # damaged records: one line now, not a traceback mid-start
    if (run_dir / "metrics.csv").is_file():
        read_metrics_csv(run_dir / "metrics.csv")
    state["path"] = str(ckpt)
    return RunPlan(cfg, run_dir, ckpt, state)


def _requested_epochs(
    cfg: DictConfig, overrides: Sequence[str] | None, state: dict[str, Any]
) -> int:
    """``trainer.epochs`` of the resumed run: the command line's, else the checkpoint's (with
    ``overrides``, the CLI), else ``cfg``'s."""
    if overrides is None:
        return int(cfg.trainer.epochs)
    given = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("trainer.epochs=")]
    if given:
        return int(given[-1])
    return int(state["config"].get("trainer", {}).get("epochs", 0))


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir``'s ``summary.json`` (None when absent), or one line naming a damaged one."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        reason = first_line(err)
        summary, problem = None, f"is not readable JSON ({reason})"
    else:
        problem = "holds no JSON object"
    if not isinstance(summary, dict):
        raise ConfigError(
            f"{path} {problem}: move it away (mv {path} {path}.bad) and run the command again; "
            "the run's last checkpoint then repeats its test evaluation and writes a new one"
        )
    return summary


def used_run_dir_error(run_dir: Path, restart_incomplete: bool = False) -> ConfigError | None:
    """Why a fresh start may not write into ``run_dir`` (None: nothing there yet, or with
    ``restart_incomplete`` a run that never wrote ``last.pt``). Raised before Hydra writes its
    record there (:mod:`defcon_exp.run.launch`) and by :func:`plan_run`."""
    if not is_used_run_dir(run_dir):
        return None
    what = f"run_dir={str(run_dir)!r} is invalid: it already holds a run"
    if (run_dir / "summary.json").is_file():
        return ConfigError(
            f"{what} that finished (summary.json); choose a new directory (defcon-report "
            f"{run_dir} shows its result)"
        )
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return ConfigError(
            f"{what} (checkpoints/metrics); continue it with resume={run_dir} or choose a new "
            "directory"
        )
    if restart_incomplete:
        return None
    return ConfigError(
        f"{what} that stopped before its first checkpoint; start it over there with the same "
        "command plus resume=auto, or choose a new directory"
    )


def plan_run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: Sequence[str] | None = None,
    restart_incomplete: bool = False,
) -> RunPlan:
    """Decide fresh / resume / auto / finished for ``cfg`` writing into ``run_dir`` (ignored
    with ``resume=<path>``: a resumed run writes into its own dir). The caller holds the lock.

    ``resume=auto``: ``summary.json`` in ``run_dir`` -> finished; ``checkpoints/last.pt`` ->
    resume it; else a fresh start there. ``restart_incomplete`` lets a fresh start reuse a
    dir whose run never wrote ``last.pt``.
    """
    cfg = cfg.copy()
    if resume_kind(cfg.resume) == "auto":
        if (summary := _finished_summary(run_dir)) is not None:
            _say(f"{run_dir} already finished (summary.json exists): skipping")
            return RunPlan(cfg, run_dir, summary=summary)
        if (run_dir / "checkpoints" / "last.pt").is_file():
            log.debug("resume=auto: resuming %s", run_dir)  # fit() says "resumed from ..."
            cfg.resume = str(run_dir)
            return _unless_finished(plan_resume(cfg, None))
        cfg.resume = None
        restart_incomplete = True
    if resume_kind(cfg.resume) == "path":
        plan = plan_resume(cfg, overrides)
        if plan.run_dir.resolve() != run_dir.resolve():  # only the dir whose lock is held
            raise ConfigError(
                f"resume={str(cfg.resume)!r} is invalid: its checkpoint lies in {plan.run_dir}, "
                f"not in {run_dir.resolve()}; resume={plan.run_dir}"
            )
        return _unless_finished(plan)
    error = used_run_dir_error(run_dir, restart_incomplete)
    if error is not None:
        raise error
    return RunPlan(cfg, run_dir)


def _unless_finished(plan: RunPlan) -> RunPlan:
    """A resume whose checkpoint ended the run (epoch end, all epochs, summary written) is
    a finished plan: nothing to train."""
    state, summary = plan.state or {}, _finished_summary(plan.run_dir)
    epochs = plan.cfg.trainer.epochs
    done = int(state.get("epoch", 0)) >= epochs or state.get("stop") is not None
    if state.get("position") is None and done and summary:
        _say(
            f"{plan.run_dir} already finished ({state['epoch']} of trainer.epochs={epochs} "
            "epochs, summary.json written): nothing to do; pass a larger trainer.epochs to "
            "train on"
        )
        return RunPlan(plan.cfg, plan.run_dir, plan.checkpoint, summary=summary)
    return plan


def _say(message: str) -> None:
    """Log ``message`` and tell the person at the terminal (rank 0 plans alone)."""
    if not message:
        return
    log.info("%s", message)
    print(f"defcon-train: {message}", file=sys.stderr)
