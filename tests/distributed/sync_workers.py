"""Count, per training step, the collectives and host syncs of a 2-process gloo ``fit()``
(a module of its own so ``torch.multiprocessing.spawn`` can import it in the children).

A *collective* is a call of a ``torch.distributed`` collective from Python (every one is a
host-side wait on gloo; DDP's bucketed gradient all-reduce runs in its C++ reducer and is
not counted: it overlaps the backward and is the one collective data parallelism needs).
A *host sync* is a read of a tensor value on the host: ``aten._local_scalar_dense``
(``.item()``, ``bool(t)``, ``int(t)``) seen by a dispatch mode, and ``Tensor.tolist()``
(which on the CPU bypasses the dispatcher). The count of step ``k`` runs from the training
forward of step ``k`` to that of step ``k + 1``: its backward, update, logging and stop check.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "all_gather_object",
               "broadcast_object_list", "barrier", "reduce_scatter")
HOST_READS = {torch.ops.aten._local_scalar_dense.default}


class HostReads(TorchDispatchMode):
    """Counts the ops that copy a tensor value to the host."""

    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in HOST_READS:
            self.counts["host_sync"] += 1
        return func(*args, **(kwargs or {}))


def _patch(counts: Counter) -> None:
    for name in COLLECTIVES:
        original = getattr(dist, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            counts["collective"] += 1
            return _original(*args, **kwargs)

        setattr(dist, name, counted)
    tolist = torch.Tensor.tolist

    def counted_tolist(self: torch.Tensor) -> Any:
        counts["host_sync"] += 1
        return tolist(self)

    torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign]


def run(rank: int, world: int, port: int, tmp: str, sync_bn: bool) -> None:
    """Train 2 epochs of 6 steps (log every 3) on ``world`` gloo ranks; rank 0 writes the
    per-step counts of steps 1-5 of each epoch (the 6th ends in the epoch's evaluation) to
    ``tmp/counts-<sync_bn>.json``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        per_step = _count_fit(Path(tmp), sync_bn)
        if rank == 0:
            (Path(tmp) / f"counts-{sync_bn}.json").write_text(json.dumps(per_step))
    finally:
        dist.destroy_process_group()


def _count_fit(tmp: Path, sync_bn: bool) -> dict[str, dict[str, int]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from engine_fixtures import TinyLoader, tiny_data

    from defcon_exp.engine import distributed
    from defcon_exp.engine.fit import Loaders, fit
    from defcon_exp.engine.fit_settings import TrainerConfig
    from defcon_exp.engine.optim import build_optimizer
    from defcon_exp.engine.schedulers import build_schedulers

    torch.manual_seed(0)
    model: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16),
                                     nn.ReLU(), nn.Linear(16, 4))
    if sync_bn:
        model = distributed.convert_sync_batchnorm(model, torch.device("cpu"))
    optimizer = build_optimizer(model, "sgd", lr=0.1)
    schedule, plateau = build_schedulers("constant", optimizer=optimizer, epochs=2, steps_per_epoch=6)
    rank = distributed.rank()
    images, labels = tiny_data(48)
    train = TinyLoader(images[rank::2], labels[rank::2], 4, seed=3)  # 6 steps of 4 per rank
    val = TinyLoader(*tiny_data(16, seed=1), 8, shuffle=False)
    counts: Counter = Counter()
    marks: list[tuple[int, int]] = []

    def mark(module: nn.Module, _inputs: Any) -> None:
        if module.training:
            marks.append((counts["collective"], counts["host_sync"]))

    model.register_forward_pre_hook(mark)
    settings = TrainerConfig(epochs=2, log_every_n_steps=3, progress=False)
    _patch(counts)
    with HostReads(counts):
        fit(model, optimizer, schedule, plateau, Loaders(train, val, val, num_classes=4),
            torch.device("cpu"), tmp / f"run-{sync_bn}-{rank}", settings,
            forward_model=distributed.wrap_ddp(model, torch.device("cpu")))
    per_step = {}
    for step in range(1, 12):
        if step % 6:  # the epoch's last window holds its evaluation too
            (c0, h0), (c1, h1) = marks[step - 1], marks[step]
            per_step[str(step)] = {"collective": c1 - c0, "host_sync": h1 - h0}
    return per_step
