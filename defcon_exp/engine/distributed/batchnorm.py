"""BatchNorm under DDP: when to synchronise it (:func:`use_sync_batchnorm`) and how —
torch's :class:`nn.SyncBatchNorm` on GPUs, :class:`CPUSyncBatchNorm` for CPU/gloo runs.

Synchronised BatchNorm costs collectives in every BatchNorm layer: :class:`CPUSyncBatchNorm`
two all-reduces in the forward pass and two in the backward (ResNet-50: 53 layers, 212
host-side waits on gloo a step); torch's GPU version one in each pass plus a host sync in
the forward (53 a ResNet-50 step, counted in issue 18). Its benefit is statistics over the global batch instead of each process's share, which
only matters for small shares: in Wu & He, "Group Normalization" (ECCV 2018, Fig. 1 / Table
2), ResNet-50's ImageNet error with BatchNorm is 23.6% at 32 images per GPU and 23.7% at 16,
but 24.8% at 8, 27.3% at 4 and 34.7% at 2. So ``auto`` synchronises below
:data:`SYNC_BELOW` images per process and not from there on.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn import functional as dist_fn

from defcon_exp.engine.distributed.group import is_active

__all__ = ["SYNC_BELOW", "CPUSyncBatchNorm", "convert_sync_batchnorm", "use_sync_batchnorm"]

#: ``trainer.sync_batchnorm=auto`` synchronises when a process normalises fewer images
SYNC_BELOW = 16


def use_sync_batchnorm(setting: Any, per_process_batch: int) -> bool:
    """Whether ``trainer.sync_batchnorm=setting`` (true, false or ``auto``) synchronises
    BatchNorm for ``per_process_batch`` images per process (``auto``: below
    :data:`SYNC_BELOW`).

    Raises:
        ValueError: any other setting.
    """
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return per_process_batch < SYNC_BELOW
    raise ValueError(
        f"trainer.sync_batchnorm={setting!r} is invalid: use true, false or auto "
        f"(synchronise below {SYNC_BELOW} images per process)"
    )


def _summed(tensor: torch.Tensor, group: Any) -> torch.Tensor:
    """Differentiable sum over the ranks of ``group`` (the gradient is summed too)."""
    # recent torch deprecates it for the private _functional_collectives.all_reduce (whose
    # autograd only recent versions register); it stays correct, so only the warning goes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return dist_fn.all_reduce(tensor, group=group)


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised BatchNorm (Ioffe & Szegedy 2015, statistics over the global batch) for
    CPU tensors on gloo, which torch's :class:`nn.SyncBatchNorm` refuses (GPU only, and DDP
    rejects it in CPU modules). The batch sums go through torch's differentiable
    :func:`torch.distributed.nn.functional.all_reduce` in two passes (the mean, then the
    centred sum of squares), so forward and backward equal BatchNorm over the global batch.
    Same parameters and buffers as ``BatchNorm*d``; outside training (or a process group)
    it is plain BatchNorm.

    Shape:
        input ``Tensor[B, C, *]`` (any number of trailing dims), output the same.
    """

    process_group: Any = None

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not is_active():
            return super().forward(input)
        self._check_input_dim(input)
        group = self.process_group or dist.group.WORLD
        dims = [0, *range(2, input.dim())]
        shape = [1, input.shape[1]] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype)
        totals = _summed(torch.cat([input.sum(dims), count]), group)
        n = totals[-1].detach()
        mean = totals[:-1] / n
        centred = input - mean.view(shape)
        var = _summed((centred * centred).sum(dims), group) / n
        if self.track_running_stats and self.running_mean is not None:
            self._track(mean.detach(), var.detach(), n)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        """Running statistics as ``F.batch_norm`` keeps them (unbiased variance)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        unbiased = torch.where(n > 1, var * n / (n - 1), var)  # no host read of n
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm) -> CPUSyncBatchNorm:
        """A synchronised copy of ``bn`` sharing its parameters and buffers (as
        :meth:`nn.SyncBatchNorm.convert_sync_batchnorm` does)."""
        out = cls(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, device="meta"
        )
        if bn.affine:
            out.weight, out.bias = bn.weight, bn.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(out, name, getattr(bn, name))
        out.train(bn.training)
        return out


def _cpu_sync(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        out = CPUSyncBatchNorm.from_batchnorm(module)
    for name, child in module.named_children():
        out.add_module(name, _cpu_sync(child))
    return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` as a synchronised BatchNorm (statistics over the global
    batch): torch's :meth:`nn.SyncBatchNorm.convert_sync_batchnorm`, and on the CPU
    :class:`CPUSyncBatchNorm` instead. Parameter and buffer names are unchanged (plain
    checkpoints) and the parameter objects are the same (optimisers built before still
    update them)."""
    if device.type == "cpu":
        return _cpu_sync(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
