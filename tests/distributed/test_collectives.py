"""The distributed helpers in 2 real gloo processes (``torch.multiprocessing.spawn``):
sharded evaluation with an odd test set, CPU SyncBatchNorm against BatchNorm on the whole
batch, errors and signals seen by one rank reaching all, and the NaN check agreeing."""

from __future__ import annotations

import socket
from pathlib import Path

import ddp_workers
import torch.multiprocessing as mp

from defcon_exp.engine import distributed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_collective_helpers_in_two_gloo_processes(tmp_path: Path) -> None:
    mp.spawn(ddp_workers.run, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)


def test_single_process_helpers_are_identities() -> None:
    assert not distributed.is_active() and distributed.is_main() and distributed.world_size() == 1
    assert distributed.share_from_main(lambda: 3) == 3
    assert distributed.run_everywhere(lambda: 4) == 4


def test_detect_reads_torchrun_variables() -> None:
    assert distributed.detect({}) is None
    assert distributed.detect({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None
    env = distributed.detect({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert env == distributed.DistEnv(rank=3, world_size=4, local_rank=1)
    for bad in ({"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}):
        try:
            distributed.detect(bad)
        except ValueError as err:
            assert "torchrun" in str(err)
        else:
            raise AssertionError(f"{bad} accepted")
    try:
        distributed.detect({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"})
    except ValueError as err:
        assert "SLURM_NTASKS=8 is invalid without torchrun" in str(err) and "srun" in str(err)
    else:
        raise AssertionError("srun without torchrun accepted")
