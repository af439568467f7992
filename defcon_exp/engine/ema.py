"""Weight EMA: ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``.

``use_buffers=True`` averages the BatchNorm running statistics together with the weights
(timm's ``ModelEmaV3`` does the same), so the averaged network evaluates with statistics
that belong to its averaged weights — no extra BatchNorm pass over the data is needed.
The first update copies the weights; each later one is
``ema = decay * ema + (1 - decay) * weights``, once per optimiser step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from defcon_exp.regularisation import EMAConfig

__all__ = ["WeightEMA", "build_ema", "ema_weights"]


class WeightEMA:
    """The exponential moving average of ``model``'s parameters and buffers.

    ``model`` is the raw module (not a DDP / compiled wrapper); :attr:`module` is the averaged
    copy, a network of the same class to evaluate.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source = model
        self.averaged = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
        )
        self.averaged.eval()

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self) -> None:
        """Fold the source model's current weights in (call after each optimiser step)."""
        self.averaged.update_parameters(self.source)

    def state_dict(self) -> dict[str, Any]:
        """``module.<key>`` tensors and ``n_averaged`` (the updates so far)."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.averaged.load_state_dict(state)


def ema_weights(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The plain model ``state_dict`` inside a :meth:`WeightEMA.state_dict`."""
    return {k.removeprefix("module."): v for k, v in state.items() if k.startswith("module.")}


def build_ema(model: nn.Module, ema: EMAConfig) -> WeightEMA | None:
    """A :class:`WeightEMA` of ``model`` from ``trainer.ema``; None when not enabled."""
    return WeightEMA(model, ema.decay) if ema.enabled else None
