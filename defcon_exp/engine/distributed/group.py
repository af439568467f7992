"""The process group: join it (:func:`init`), leave it (:func:`teardown`), ask who this
process is (:func:`rank`, :func:`is_main`, ...), which device it trains on, and stop when the
launcher that started it is gone (:func:`parent_gone`)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from defcon_exp.engine.distributed.environment import DistEnv

__all__ = ["DEFAULT_TIMEOUT", "device_for", "init", "is_active", "is_main", "local_rank",
           "parent_gone", "rank", "teardown", "world_size"]

log = logging.getLogger(__name__)

#: timeout of every collective; a rank that stops answering fails the run after this long
#: (torchrun also tears the whole job down as soon as one worker process exits with an error)
DEFAULT_TIMEOUT = timedelta(minutes=30)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: the launcher's pid when this rank joined (None: not started by a launcher we follow)
_parent: int | None = None


def init(env: DistEnv, timeout: timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the process group described by ``env`` (``env://`` rendezvous: torchrun's
    ``MASTER_ADDR``/``MASTER_PORT``; for srun tasks they and ``WORLD_SIZE``/``RANK``/
    ``LOCAL_RANK`` are exported first). Backend ``cpu:gloo,cuda:nccl`` with CUDA, else gloo.
    With CUDA, the current device becomes ``cuda:LOCAL_RANK`` (when that GPU exists).
    Under torchrun the rank also follows its agent: see :func:`parent_gone`."""
    if dist.is_initialized():
        return
    if env.launcher == "slurm":
        local = env.local_rank
        if torch.cuda.is_available() and torch.cuda.device_count() == 1:
            local = 0  # srun bound one GPU to each task (--gpus-per-task=1): it is cuda:0
        os.environ.update(  # what torchrun would have set (env:// rendezvous, local_rank())
            MASTER_ADDR=str(env.master_addr),
            MASTER_PORT=str(env.master_port),
            WORLD_SIZE=str(env.world_size),
            RANK=str(env.rank),
            LOCAL_RANK=str(local),
        )
        env = DistEnv(env.rank, env.world_size, local)
    elif "TORCHELASTIC_RUN_ID" in os.environ:
        _follow_parent()
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        if env.local_rank < torch.cuda.device_count():
            torch.cuda.set_device(env.local_rank)
    dist.init_process_group(
        backend=backend, rank=env.rank, world_size=env.world_size, timeout=timeout
    )


def _follow_parent() -> None:
    """Stop with the torchrun agent. torchrun forwards a SIGTERM it receives, but a SIGKILLed
    agent forwards nothing and its workers (in sessions of their own) would train on as
    orphans: on Linux the kernel sends this rank SIGTERM when the agent dies
    (``PR_SET_PDEATHSIG``), which stops it like any SIGTERM; everywhere :func:`parent_gone`
    also reports it at the next stop-flag check."""
    global _parent
    _parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
    if os.getppid() != _parent:  # the agent died before the kernel watched it
        os.kill(os.getpid(), signal.SIGTERM)


def parent_gone() -> bool:
    """True when the launcher (torchrun agent) that started this rank has exited."""
    return _parent is not None and os.getppid() != _parent


def teardown() -> None:
    """Leave the process group (no collective: safe on error paths)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only process that writes or logs."""
    return rank() == 0


def local_rank() -> int:
    """This process's GPU index on its node (torchrun's ``LOCAL_RANK``; 0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for(spec: str, local_rank: int) -> torch.device:
    """The device of this rank for ``trainer.device=spec``: ``cuda:LOCAL_RANK`` for ``auto``
    (with CUDA) and ``cuda``; ``cpu`` for ``cpu`` and ``auto`` without CUDA.

    Raises:
        ValueError: ``cuda:N`` (every rank would pick the same GPU), or a missing GPU.
    """
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec not in ("auto", "cuda"):
        raise ValueError(
            f"trainer.device={spec!r} is invalid under torchrun: each process uses "
            "cuda:LOCAL_RANK; use trainer.device=cuda (or auto) and CUDA_VISIBLE_DEVICES to "
            "choose the GPUs"
        )
    if not torch.cuda.is_available():
        raise ValueError(f"trainer.device={spec!r} but CUDA is not available; use auto or cpu")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
            "use torchrun --nproc_per_node <= the number of GPUs"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device

