"""The model in :class:`~torch.nn.parallel.DistributedDataParallel`."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["wrap_ddp"]


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` (``device_ids`` =
    the rank's GPU, none on CPU). Buffers are not broadcast at every forward — SyncBatchNorm
    keeps them equal, and :func:`broadcast_buffers` is called before evaluations — so an
    evaluation forward is never a collective and ranks may run different batch counts."""
    kwargs: dict[str, Any] = {}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:  # older torch
        kwargs["broadcast_buffers"] = False
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, **kwargs
    )
