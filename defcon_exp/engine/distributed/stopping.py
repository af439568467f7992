"""All ranks stop at the same step: the agreement on a stop signal (SIGTERM, SIGINT,
pre-emption, or the torchrun agent gone), as a collective every ``every_n_steps`` steps
rather than after every step (so it is not a host sync per step)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import torch
import torch.distributed as dist

from defcon_exp.engine.distributed.group import is_active, parent_gone

__all__ = ["SignalAgreement"]


class SignalAgreement:
    """Makes all ranks agree on a stop signal.

    :meth:`__call__` is a (tiny, CPU/gloo) collective returning the largest signal number any
    rank received (None: none); :meth:`at_step`, called after every training step, does it
    only every ``every_n_steps``-th call and otherwise returns None. All ranks call both at
    the same points (after every step, at every epoch end), so they count the same calls and
    stop after the same step — a signal is acted on within ``every_n_steps`` steps. In a
    single process both just return ``received()`` (no collective, checked every step). A
    rank whose torchrun agent has exited reports SIGTERM (see ``group.parent_gone``).
    """

    def __init__(self, received: Callable[[], int | None], every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} is invalid: use 1 or more")
        self.received = received
        self.every_n_steps = every_n_steps
        self._steps = 0
        #: the value of the last agreement (the agreed signal once a stop was decided)
        self.last: int | None = None

    def _local(self) -> int | None:
        signum = self.received()
        if signum is None and parent_gone():
            return int(signal.SIGTERM)
        return signum

    def __call__(self) -> int | None:
        local = self._local()
        if is_active():
            flag = torch.tensor([local or 0], dtype=torch.int64)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            local = int(flag.item()) or None
        self.last = local
        return local

    def at_step(self) -> int | None:
        """The agreed signal after a training step: a collective every ``every_n_steps``-th
        call (None in between)."""
        self._steps += 1
        if is_active() and self._steps % self.every_n_steps:
            return None
        return self()
