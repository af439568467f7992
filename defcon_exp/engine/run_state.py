"""A run's state between steps: what a checkpoint holds, how it is written and restored.

Checkpoint keys (``checkpoints/last.pt``, every epoch), defined here only: ``version``,
``model``, ``epoch`` (epochs completed), ``global_step``, ``best`` (split, metric, value,
epoch, metrics), ``config`` (plain data), ``model_name``, ``num_classes``, ``num_params``,
``wall_time_s`` (all segments so far), ``weights`` (``raw`` | ``ema``: what ``best`` and
evaluation use), ``stop`` (a hook's ``{"reason", "status"}`` once it ended the run, else None),
``hooks`` (the states of stateful epoch hooks) and, with ``trainer.ema``, ``ema`` (the averaged model's state); a full checkpoint adds ``optimizer``, ``schedule``,
``plateau`` (or None), ``scaler``, ``rng`` and ``position`` — None at an epoch end, else
``{"batches_done", "metrics"}`` of the interrupted epoch ``epoch`` (0-based). ``best.pt``
holds the weights-only part (it is for evaluation, not for resuming).

A checkpoint is written only from a finite state: every parameter and buffer is checked on
the device when it is about to be written (one host sync per checkpoint, none per step).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defcon_exp.engine.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    load_model_state,
    save_checkpoint,
)
from defcon_exp.engine.ema import WeightEMA
from defcon_exp.engine.metrics import EPOCH_METRICS
from defcon_exp.engine.schedulers import LRSchedule, Plateau
from defcon_exp.engine.seed import capture_rng_state, check_rng_state, restore_rng_state
from defcon_exp.rates import first_line

__all__ = ["CheckpointWriteError", "NonFiniteStateError", "RunState", "RunStateStore",
           "check_resume_state"]

log = logging.getLogger("defcon_exp.engine.fit")


class NonFiniteStateError(RuntimeError):
    """The weights or BatchNorm buffers hold NaN/Inf: no checkpoint is written from them."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full...); the previous one is intact."""


@dataclass
class RunState:
    """Progress of a run (restored from a checkpoint, advanced by the loop)."""

    split: str  # the selection split: "val", or "test" without a validation split
    epoch: int = 0  # epochs completed
    global_step: int = 0
    wall_before: float = 0.0  # seconds of earlier segments (before this process)
    position: dict[str, Any] | None = None  # mid-epoch position of the checkpoint resumed
    best: dict[str, Any] = field(default_factory=dict)
    train_images: int = 0  # images trained over all segments (for the summary's images/s)
    train_seconds: float = 0.0
    stop: dict[str, str] | None = None  # a hook ended the run: {"reason", "status"}

    def __post_init__(self) -> None:
        if not self.best:
            self.best = {"split": self.split, "metric": f"{self.split}/top1", "value": None,
                         "epoch": None, "metrics": {}}

    def update_best(self, epoch: int, metrics: Mapping[str, float], weights: str = "raw") -> bool:
        """Record ``metrics`` of ``epoch`` (1-based) if the top-1 of ``weights`` (``raw``, or
        ``ema``: the ``ema_top1`` entry) beats the best; True if so."""
        key = "ema_top1" if weights == "ema" else "top1"
        if self.best["value"] is not None and metrics[key] <= self.best["value"]:
            return False
        self.best = {"split": self.split, "metric": f"{self.split}/{key}", "value": metrics[key],
                     "epoch": epoch, "metrics": dict(metrics), "weights": weights}
        return True


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of ``model``'s floating parameters and buffers holding NaN/Inf (one host sync)."""
    named = [*model.named_parameters(), *model.named_buffers()]
    named = [(n, t) for n, t in named if t.is_floating_point() and t.numel()]
    if not named:
        return []
    flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in named]).cpu()
    return [name for (name, _), ok in zip(named, flags.tolist(), strict=True) if not ok]


def _check_position(position: Any) -> None:
    """A mid-epoch ``position``: ``{"batches_done": int >= 0, "metrics": {"sums": float
    Tensor[M], "count": int >= 0}}`` (M: :data:`EPOCH_METRICS`)."""
    if position is None:
        return
    done, metrics = position["batches_done"], position["metrics"]
    sums, count = metrics["sums"], metrics["count"]
    if isinstance(done, bool) or not isinstance(done, int) or done < 0:
        raise ValueError(f"batches_done={done!r} is not a count")
    if not isinstance(sums, torch.Tensor) or sums.shape != (len(EPOCH_METRICS),):
        raise ValueError(f"metrics.sums is not a Tensor[{len(EPOCH_METRICS)}]")
    if not sums.is_floating_point() or not bool(torch.isfinite(sums).all()):
        raise ValueError("metrics.sums is not finite float")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"metrics.count={count!r} is not a count")


def check_resume_state(state: Mapping[str, Any], source: str) -> None:
    """Check a full checkpoint's ``position`` and ``rng`` (applied to fresh generators only,
    nothing global changes) before a resume uses them.

    Raises:
        CheckpointError: one line naming ``source``, the damaged part and the way out.
    """
    for part, check in (("position", _check_position), ("rng", check_rng_state)):
        try:
            check(state.get(part))
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            reason = first_line(err, "")[:120]
            raise CheckpointError(
                f"{source} cannot be resumed: its {part!r} entry is damaged ({type(err).__name__}"
                f"{': ' + reason if reason else ''}); resume an intact copy, or evaluate its "
                "weights with defcon-eval and start a new run"
            ) from None


@dataclass
class RunStateStore:
    """Builds checkpoint payloads from the run's objects, writes them, restores them."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    plateau: Plateau | None
    scaler: torch.amp.GradScaler
    ckpt_dir: Path
    identity: dict[str, Any]  # config, model_name, num_classes, num_params
    write: bool = True  # False on ranks > 0
    ema: WeightEMA | None = None  # trainer.ema: its state goes into every checkpoint
    weights: str = "raw"  # trainer.ema.select: the weights best.pt and the headline use
    #: epoch hooks with a state (``state_key``, ``state_dict``, ``load_state_dict``: early
    #: stopping): saved under ``hooks`` in every checkpoint so a resumed run decides the same
    hooks: list[Any] = field(default_factory=list)

    def payload(self, state: RunState, wall: float, full: bool, position: Any = None) -> dict:
        out: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "model": self.model.state_dict(),
            "epoch": state.epoch,
            "global_step": state.global_step,
            "best": state.best,
            **self.identity,
            "wall_time_s": wall,
            "throughput": {"images": state.train_images, "seconds": state.train_seconds},
            "weights": self.weights,
            "stop": state.stop,
            "hooks": {hook.state_key: hook.state_dict() for hook in self.hooks},
        }
        if self.ema is not None:
            out["ema"] = self.ema.state_dict()
        if full:
            out.update(
                optimizer=self.optimizer.state_dict(),
                schedule=self.schedule.state_dict(),
                plateau=self.plateau.state_dict() if self.plateau is not None else None,
                scaler=self.scaler.state_dict(),
                rng=capture_rng_state(),
                position=position,
            )
        return out

    def save(self, name: str, payload: dict[str, Any]) -> Path:
        """Write ``payload`` as ``checkpoints/<name>`` if the model's state is finite.

        Raises:
            NonFiniteStateError: NaN/Inf weights or buffers (nothing written).
            CheckpointWriteError: the write failed; the previous file is intact.
        """
        path = self.ckpt_dir / name
        bad = non_finite_tensors(self.model)
        if bad:
            raise NonFiniteStateError(
                f"the weights became NaN/Inf by global step {payload['global_step']} ("
                f"{len(bad)} tensors, e.g. {', '.join(bad[:3])}); {name} was not written, so "
                "checkpoints/last.pt (if any) is the last good state. Try a lower optim.lr, "
                "trainer.grad_clip_norm=5 or scheduler.warmup_epochs=1."
            )
        if not self.write:
            return path
        try:
            return save_checkpoint(payload, path)
        except (OSError, RuntimeError) as err:
            free = shutil.disk_usage(self.ckpt_dir).free / 2**20
            what = "the previous one is intact" if path.exists() else "no earlier one existed"
            raise CheckpointWriteError(
                f"could not write {path} ({type(err).__name__}: "
                f"{first_line(err, 'write failed')[:120]}"
                f"; {free:,.0f} MiB free on its disk); {what}. Free space and resume."
            ) from None

    def restore(self, resume: Mapping[str, Any], split: str) -> RunState:
        """Load every object's state from ``resume`` (a loaded checkpoint); the run state."""
        load_model_state(self.model, resume["model"], resume.get("path", "checkpoint"))
        self.optimizer.load_state_dict(resume["optimizer"])
        self.schedule.load_state_dict(resume["schedule"])
        if self.plateau is not None and resume.get("plateau") is not None:
            self.plateau.load_state_dict(resume["plateau"])
        if resume.get("scaler"):  # empty when saved with another precision than 16-mixed
            self.scaler.load_state_dict(resume["scaler"])
        restore_rng_state(resume["rng"])
        if self.ema is not None and resume.get("ema") is not None:
            self.ema.load_state_dict(resume["ema"])
        elif self.ema is not None:
            log.warning("resume: the checkpoint holds no weight EMA; it starts from these weights")
        hook_states = resume.get("hooks") or {}
        for hook in self.hooks:
            if hook.state_key in hook_states:
                hook.load_state_dict(hook_states[hook.state_key])
        throughput = resume.get("throughput", {})
        return RunState(
            split, int(resume["epoch"]), int(resume["global_step"]),
            wall_before=float(resume.get("wall_time_s", 0.0)), position=resume.get("position"),
            best=dict(resume["best"]), train_images=int(throughput.get("images", 0)),
            train_seconds=float(throughput.get("seconds", 0.0)), stop=resume.get("stop"),
        )
