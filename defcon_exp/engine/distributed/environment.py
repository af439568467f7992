"""Which processes make up the run: the launcher's variables (``torchrun`` or Slurm's ``srun``)
read into a :class:`DistEnv`, including the Slurm node-list parser for the rendezvous host."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DistEnv", "detect", "first_host"]


@dataclass(frozen=True)
class DistEnv:
    """The launcher's view of this process: global ``rank`` of ``world_size``, and
    ``local_rank`` (the GPU index on its node)."""

    rank: int
    world_size: int
    local_rank: int
    #: ``torchrun`` (its variables are used as they are) or ``slurm`` (srun tasks)
    launcher: str = "torchrun"
    #: Slurm only: the rendezvous host and port :func:`init` exports for ``env://``
    master_addr: str | None = None
    master_port: int | None = None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-05,09],cpu1`` -> ``gpu03``."""
    match = re.match(r"\s*([^,\[\s]+)(?:\[([^\]]+)\])?", nodelist)
    if match is None:
        raise ValueError(f"SLURM_STEP_NODELIST={nodelist!r} is not a Slurm node list")
    prefix, ranges = match.groups()
    return prefix if ranges is None else prefix + re.split(r"[,-]", ranges)[0]


def _slurm(env: Mapping[str, str]) -> DistEnv | None:
    """The srun task's environment (``SLURM_STEP_NUM_TASKS`` > 1), else None. A batch
    script or ``salloc`` shell has no ``SLURM_STEP_NUM_TASKS``, so it stays one process."""
    tasks = env.get("SLURM_STEP_NUM_TASKS", "")
    if not tasks.isdigit() or int(tasks) < 2 or "SLURM_PROCID" not in env:
        return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
    addr = env.get("MASTER_ADDR") or (first_host(nodelist) if nodelist else None)
    if addr is None:
        raise ValueError(
            "srun started several tasks but neither MASTER_ADDR nor SLURM_STEP_NODELIST is "
            "set; export MASTER_ADDR=<first node> (or use srun ... torchrun)"
        )
    job = int(env.get("SLURM_JOB_ID", "0") or 0)
    step = int(env.get("SLURM_STEP_ID", "0") or 0)
    port = int(env.get("MASTER_PORT") or 20000 + (job * 16 + step) % 20000)
    return DistEnv(
        int(env["SLURM_PROCID"]),
        int(tasks),
        int(env.get("SLURM_LOCALID", "0")),
        launcher="slurm",
        master_addr=addr,
        master_port=port,
    )


def detect(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The distributed environment set by ``torchrun`` (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``) or by ``srun`` (several tasks in the job step), or None for a plain
    single process (also for ``WORLD_SIZE=1``).

    Raises:
        ValueError: the variables are inconsistent; the message says what to set.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return _slurm(env)
    try:
        world = int(env["WORLD_SIZE"])
        rank_ = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", "0"))
    except ValueError as err:
        raise ValueError(
            "WORLD_SIZE/RANK/LOCAL_RANK must be integers (as set by torchrun); received "
            f"WORLD_SIZE={env.get('WORLD_SIZE')!r} RANK={env.get('RANK')!r} "
            f"LOCAL_RANK={env.get('LOCAL_RANK')!r}"
        ) from err
    if world < 1 or not 0 <= rank_ < world or local < 0:
        raise ValueError(
            f"WORLD_SIZE={world} RANK={rank_} LOCAL_RANK={local} is invalid: need "
            "0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; launch with torchrun"
        )
    if world == 1:
        return None
    return DistEnv(rank_, world, local)
