"""Under DDP a training step waits on the host only at log intervals (issue 18): counted
collectives and host reads per step in 2 real gloo processes (see ``sync_workers``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import sync_workers
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def counts(tmp_path: Path, sync_bn: bool) -> dict[int, dict[str, int]]:
    mp.spawn(sync_workers.run, args=(2, free_port(), str(tmp_path), sync_bn), nprocs=2, join=True)
    raw = json.loads((tmp_path / f"counts-{sync_bn}.json").read_text())
    return {int(step): value for step, value in raw.items()}


@pytest.mark.parametrize("sync_bn", [False, True])
def test_no_collective_or_host_sync_between_log_intervals(tmp_path: Path, sync_bn: bool) -> None:
    per_step = counts(tmp_path, sync_bn)
    assert sorted(per_step) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    # one BatchNorm layer synchronised: 2 all-reduces in its forward, 2 in its backward
    batchnorm = 4 if sync_bn else 0
    for step, seen in per_step.items():
        if step % 3:  # not a log step (log_every_n_steps=3)
            assert seen == {"collective": batchnorm, "host_sync": 0}, (step, per_step)
        else:  # the NaN check + interval loss (1 all-reduce, 1 read), the stop flag (1 + 1)
            assert seen == {"collective": batchnorm + 2, "host_sync": 2}, (step, per_step)
