"""Collectives every rank calls at the same point: sums of metrics, broadcasts, and the
error gathering that turns a failure on one rank into an error on every rank (instead of
the others waiting ``DEFAULT_TIMEOUT`` = 30 minutes in their next collective)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from defcon_exp.engine.distributed.group import is_active, is_main, world_size

__all__ = ["DistributedError", "all_reduce", "barrier", "broadcast_buffers", "broadcast_object",
           "check_same", "main_first", "reduce_metric_state", "run_everywhere", "share_from_main"]

T = TypeVar("T")
_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


class DistributedError(RuntimeError):
    """Another rank failed; the message names the rank and repeats its error."""


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


def _attempt(fn: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """``(fn(), None)``, or ``(None, the error fn raised)``."""
    try:
        return fn(), None
    except Exception as err:
        return None, err


def run_everywhere(fn: Callable[[], T]) -> T:
    """Run ``fn`` on every rank; if it raised on any rank, raise on all of them (the failing
    rank its own error, the others a :class:`DistributedError` naming it). One gather."""
    if not is_active():
        return fn()
    result, own = _attempt(fn)
    errors: list[BaseException | None] = [None] * world_size()
    dist.all_gather_object(errors, None if own is None else _portable(own))
    _raise_gathered(errors, own)
    return result  # type: ignore[return-value]


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then (if it succeeded) on the other ranks — e.g. a data set
    download that must happen once; errors are raised on every rank (see
    :func:`run_everywhere`)."""
    if not is_active():
        return fn()
    result, own = _attempt(fn) if is_main() else (None, None)
    first = broadcast_object(None if own is None else _portable(own))
    if first is not None:
        _raise_gathered([first], own)
    return run_everywhere((lambda: result) if is_main() else fn)


def share_from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank (or raise its error on
    every rank). For decisions that read/write shared state once (the run dir)."""
    if not is_active():
        return fn()
    result, own = _attempt(fn) if is_main() else (None, None)
    ok, value = broadcast_object((True, result) if own is None else (False, _portable(own)))
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
