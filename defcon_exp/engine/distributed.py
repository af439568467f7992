"""Multi-process training with PyTorch's own DDP, launched by ``torchrun``.

A process is part of a distributed run when ``torchrun`` (or any launcher following its
contract) set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR`` /
``MASTER_PORT``), or when Slurm's ``srun`` started it as one of several tasks of a job step
(``SLURM_STEP_NUM_TASKS`` > 1, ``SLURM_PROCID``, ``SLURM_LOCALID``; the first node of the
step is the rendezvous host); :func:`detect` reads them. Without them — a single plain
process — every helper here is the identity or a no-op, so single-process runs behave
exactly as before.

One process group serves everything. With CUDA available its backend is
``cpu:gloo,cuda:nccl``: CUDA tensors (DDP gradients, SyncBatchNorm, metric sums on the GPU)
go through NCCL, CPU tensors and pickled objects (the run dir, errors, stop flags) through
gloo, so control messages never force a GPU sync. Without CUDA it is plain gloo.

Rules every caller follows (they are what keeps a run from hanging):

* a collective is called by every rank at the same point — the call sites are in code run
  by all ranks with rank-independent conditions (same step counts, agreed flags);
* a failure that may hit one rank only (a missing file, a data error) goes through
  :func:`run_everywhere` / :func:`main_first`, which gather the errors and raise on *every*
  rank, so no rank waits in a collective for a peer that has already left;
* only rank 0 (:func:`is_main`) writes files or logs below WARNING.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "CPUSyncBatchNorm",
    "Discard",
    "DistEnv",
    "DistributedError",
    "SignalAgreement",
    "all_reduce",
    "barrier",
    "broadcast_buffers",
    "broadcast_object",
    "check_same",
    "convert_sync_batchnorm",
    "detect",
    "device_for",
    "first_host",
    "init",
    "is_active",
    "is_main",
    "local_rank",
    "main_first",
    "rank",
    "reduce_metric_state",
    "run_everywhere",
    "share_from_main",
    "teardown",
    "world_size",
    "wrap_ddp",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: timeout of every collective; a rank that stops answering fails the run after this long
#: (torchrun also tears the whole job down as soon as one worker process exits with an error)
DEFAULT_TIMEOUT = timedelta(minutes=30)


class DistributedError(RuntimeError):
    """Another rank failed; the message names the rank and repeats its error."""


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


def init(env: DistEnv, timeout: timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the process group described by ``env`` (``env://`` rendezvous: torchrun's
    ``MASTER_ADDR``/``MASTER_PORT``; for srun tasks they and ``WORLD_SIZE``/``RANK``/
    ``LOCAL_RANK`` are exported first). Backend ``cpu:gloo,cuda:nccl`` with CUDA, else gloo.
    With CUDA, the current device becomes ``cuda:LOCAL_RANK`` (when that GPU exists)."""
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
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        if env.local_rank < torch.cuda.device_count():
            torch.cuda.set_device(env.local_rank)
    dist.init_process_group(
        backend=backend, rank=env.rank, world_size=env.world_size, timeout=timeout
    )


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


# --- collectives -------------------------------------------------------------------------

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``op`` (``sum``, ``min``, ``max``) of ``tensor`` over all ranks, as a new tensor on
    ``tensor``'s device (the input is untouched); the identity when not distributed."""
    if not is_active():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=_OPS[op])
    return out


def barrier() -> None:
    """Wait for every rank (CPU/gloo); a no-op when not distributed."""
    if is_active():  # a CPU all-reduce goes through gloo, never through an NCCL device barrier
        dist.all_reduce(torch.zeros(1))


def broadcast_object(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` on every rank (pickled, through gloo); identity when single."""
    if not is_active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _portable(error: BaseException) -> BaseException:
    """``error`` itself if it survives pickling, else a :class:`DistributedError` copy."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return DistributedError(f"{type(error).__name__}: {error}")
    return error


def _raise_gathered(errors: list[BaseException | None], own: BaseException | None) -> None:
    if own is not None:
        raise own
    for source, error in enumerate(errors):
        if error is not None:
            raise DistributedError(
                f"rank {source} failed, so every rank stops: {type(error).__name__}: {error}"
            ) from None


def run_everywhere(fn: Callable[[], T]) -> T:
    """Run ``fn`` on every rank; if it raised on any rank, raise on all of them (the failing
    rank its own error, the others a :class:`DistributedError` naming it). One gather."""
    result: Any = None
    own: BaseException | None = None
    try:
        result = fn()
    except Exception as err:
        if not is_active():
            raise
        own = err
    if is_active():
        errors: list[BaseException | None] = [None] * world_size()
        dist.all_gather_object(errors, None if own is None else _portable(own))
        _raise_gathered(errors, own)
    return result


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then (if it succeeded) on the other ranks — e.g. a data set
    download that must happen once; errors are raised on every rank (see
    :func:`run_everywhere`)."""
    if not is_active():
        return fn()
    result: Any = None
    own: BaseException | None = None
    if is_main():
        try:
            result = fn()
        except Exception as err:
            own = err
    first = broadcast_object(None if own is None else _portable(own))
    if first is not None:
        _raise_gathered([first], own)
    return run_everywhere((lambda: result) if is_main() else fn)


def share_from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank (or raise its error on
    every rank). For decisions that read/write shared state once (the run dir)."""
    if not is_active():
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    if is_main():
        try:
            outcome = (True, fn())
        except Exception as err:
            outcome = (False, _portable(err))
    ok, value = broadcast_object(outcome)
    if not ok:
        if is_main():
            raise value
        raise DistributedError(f"rank 0 failed: {type(value).__name__}: {value}") from None
    return value


def check_same(value: int, what: str) -> None:
    """Assert that ``value`` is equal on every rank (e.g. training batches per epoch, which
    must be, or DDP would wait forever for the rank with fewer batches)."""
    if not is_active():
        return
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    if len(set(values)) != 1:
        raise AssertionError(f"{what} differ between ranks: {values} (rank: value)")


def reduce_metric_state(state: dict[str, Any]) -> dict[str, Any]:
    """A :meth:`MetricAccumulator.state_dict` summed over ranks (for mid-epoch checkpoints)."""
    if not is_active():
        return state
    packed = torch.cat(
        [state["sums"].double().cpu(), torch.tensor([float(state["count"])], dtype=torch.float64)]
    )
    total = all_reduce(packed)
    return {"sums": total[:-1].clone(), "count": int(total[-1].item())}


def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), e.g. before an
    evaluation when BatchNorm is not synchronised; a no-op when not distributed."""
    if not is_active():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


class Discard:
    """Stands in for a writer (CSV, TensorBoard) on ranks other than 0: every method is a
    no-op returning None."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class SignalAgreement:
    """Makes all ranks agree on a stop signal: each call is a (tiny, CPU/gloo) collective that
    returns the largest signal number any rank received (None: none). Every rank must call it
    at the same points — after every training step and at every epoch end. In a single
    process it just returns ``received()``."""

    def __init__(self, received: Callable[[], int | None]) -> None:
        self.received = received
        #: the value of the last call (the agreed signal once a stop was decided)
        self.last: int | None = None

    def __call__(self) -> int | None:
        local = self.received()
        if is_active():
            flag = torch.tensor([local or 0], dtype=torch.int64)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            local = int(flag.item()) or None
        self.last = local
        return local


# --- model ---------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of every rank's input is the sum of all
    ranks' output gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised BatchNorm for CPU tensors (gloo), which torch's :class:`nn.SyncBatchNorm`
    refuses (GPU only, and DDP rejects it in CPU modules): batch statistics are summed over
    ranks with autograd-aware all-reduces (two passes: the mean, then the centred sum of
    squares), so forward and backward match BatchNorm over the global batch. Same parameters
    and buffers as ``BatchNorm*d``; outside training (or a process group) it is plain BN."""

    process_group: Any = None

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not is_active():
            return super().forward(input)
        self._check_input_dim(input)
        group = self.process_group or dist.group.WORLD
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() / channels], dtype=input.dtype)
        totals = _AllReduceSum.apply(torch.cat([input.sum(dims), count]), group)
        n = totals[-1].detach()
        mean = totals[:-1] / n
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), group) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                factor = 0.0 if self.momentum is None else self.momentum
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                    if self.momentum is None:
                        factor = 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / (n - 1)) if n > 1 else var.detach()
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` as a synchronised BatchNorm (statistics over the global
    batch): torch's :meth:`nn.SyncBatchNorm.convert_sync_batchnorm`, and on the CPU
    :class:`CPUSyncBatchNorm` instead. Parameter and buffer names are unchanged (plain
    checkpoints)."""
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cpu":
        for module in model.modules():
            if type(module) is nn.SyncBatchNorm:
                module.__class__ = CPUSyncBatchNorm
    return model


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` (``device_ids`` =
    the rank's GPU, none on CPU). Buffers are not broadcast at every forward — SyncBatchNorm
    keeps them equal, and :func:`broadcast_buffers` is called before evaluations — so an
    evaluation forward is never a collective and ranks may run different batch counts."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    kwargs: dict[str, Any] = {}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:  # older torch
        kwargs["broadcast_buffers"] = False
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, **kwargs
    )
