"""The objects of one :func:`~defcon_exp.engine.fit.fit` call, and the writes of a stop.

:class:`FitParts` builds them from ``fit``'s arguments — the weight EMA, the checkpoint
store and run state (:mod:`~defcon_exp.engine.run_state`), the records
(:mod:`~defcon_exp.engine.records`), the training loop's
:class:`~defcon_exp.engine.loop.StepContext` and the epoch bar — and writes a mid-epoch
checkpoint (periodic, or before a signal stop). The epoch procedure that uses them is
``fit``'s own (:mod:`~defcon_exp.engine.fit`).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from pathlib import Path

import torch
from torch import nn

from defcon_exp.engine import distributed
from defcon_exp.engine.ema import build_ema
from defcon_exp.engine.fit_settings import Loaders, RunIdentity, TrainerConfig
from defcon_exp.engine.loop import EpochPosition, StepContext
from defcon_exp.engine.mixing import build_mixer
from defcon_exp.engine.precision import grad_scaler
from defcon_exp.engine.preemption import TrainingInterrupted
from defcon_exp.engine.progress import epoch_bar, progress_enabled
from defcon_exp.engine.records import NullRecords, Records
from defcon_exp.engine.run_state import RunState, RunStateStore
from defcon_exp.engine.schedulers import LRSchedule, Plateau
from defcon_exp.models.resnet import count_parameters
from defcon_exp.rates import count_text

__all__ = ["FitParts"]

log = logging.getLogger("defcon_exp.engine.fit")


@dataclasses.dataclass(eq=False)
class FitParts:
    """The objects of one ``fit`` call, built from its arguments: the fields are ``fit``'s
    own (named here once; ``fit`` passes them through), the rest is derived after them
    (:meth:`open` builds the records and the step context, once the states are restored)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    plateau: Plateau | None
    loaders: Loaders
    device: torch.device
    run_dir: Path
    trainer: TrainerConfig
    identity: RunIdentity
    #: runs every forward pass (``model`` wrapped in DDP or compiled); None: ``model``
    forward_model: nn.Module | None = None

    def __post_init__(self) -> None:
        model, trainer, loaders = self.model, self.trainer, self.loaders
        self.forward_model = model if self.forward_model is None else self.forward_model
        self.main = distributed.is_main()
        self.show = progress_enabled(trainer.progress) and self.main  # bars: rank 0 on a TTY
        self.reduce = distributed.all_reduce if distributed.is_active() else None
        self.num_params = count_parameters(model)
        self.ema = build_ema(model, trainer.ema)
        self.select = trainer.ema.select if self.ema is not None else "raw"
        self.store = RunStateStore(
            model, self.optimizer, self.schedule, self.plateau,
            grad_scaler(trainer.precision, self.device), self.run_dir / "checkpoints",
            identity={"config": self.identity.config, "model_name": self.identity.model_name,
                      "num_classes": loaders.num_classes, "num_params": self.num_params},
            write=self.main, ema=self.ema, weights=self.select,
        )
        self.state = RunState(split="val" if loaders.val is not None else "test")
        self.eval_loader = loaders.val if loaders.val is not None else loaders.test
        self.t_start = time.perf_counter()

    def log_resumed(self) -> None:
        position = self.state.position
        done = f" + {count_text(int(position['batches_done']), 'batch')}" if position else ""
        log.info("resumed from epoch %d%s (global step %d) in %s", self.state.epoch, done,
                 self.state.global_step, self.run_dir)

    def open(self, resumed: bool, received: distributed.SignalAgreement) -> None:
        """Open the records and the step context (after the states are restored)."""
        t, state = self.trainer, self.state
        if self.main:
            self.store.ckpt_dir.mkdir(parents=True, exist_ok=True)
        resumed_epoch = state.epoch if resumed else None
        self.records = Records(self.run_dir, resumed_epoch, state.global_step,
                               self.identity.tb_name) if self.main else NullRecords()
        self.received = received
        self.ebar = epoch_bar(state.epoch, t.epochs, self.show)
        self.ctx = StepContext(
            self.forward_model, self.store.optimizer, self.store.schedule, self.plateau,
            self.store.scaler, self.device, t, progress=self.show,
            stop_requested=lambda: received.at_step() is not None, all_reduce=self.reduce,
            mixer=build_mixer(t.mix, self.identity.seed), ema=self.ema,
        )

    def close(self) -> None:
        self.ebar.close()
        self.records.close()

    def wall(self) -> float:
        return self.state.wall_before + time.perf_counter() - self.t_start

    def save_position(self, where: EpochPosition) -> Path:
        """A full mid-epoch checkpoint at ``where`` (periodic, or before a signal stop)."""
        self.state.global_step = where.global_step
        where.metrics = distributed.reduce_metric_state(where.metrics)  # the global running sums
        position = {"batches_done": where.batches_done, "metrics": where.metrics}
        in_epoch = dataclasses.replace(self.state, epoch=where.epoch)  # the unfinished epoch
        return self.store.save("last.pt", self.store.payload(in_epoch, self.wall(), True, position))

    def interrupted(self, signum: int, ckpt: Path, where: str) -> TrainingInterrupted:
        message = (
            f"{signal.Signals(signum).name} received: stopped {where} and saved {ckpt}; "
            f"resume with: defcon-train resume={self.run_dir}"
        )
        log.warning("%s", message)
        return TrainingInterrupted(message, signum, ckpt)
