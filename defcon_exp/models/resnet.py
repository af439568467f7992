"""ResNet-50 for 32x32 inputs with a channel-attention slot in every bottleneck (the blocks
and the stage builder are shared with the ImageNet ResNets: :mod:`defcon_exp.models.blocks`).

CIFAR variant: a 3x3 stride-1 stem without max-pool, bottleneck stages [3, 4, 6, 3] of widths
(64, 128, 256, 512) x 4, the attention module at the end of every bottleneck right before
the residual add (as SE-Net, ECA-Net and the DEFCON paper place it).

``stem="released"`` is the stem of the DEFCON authors' released code (``dca_resnet.py``):
``Conv2d(3, 64, 3, stride=1, padding=3)`` followed by the ImageNet max-pool (3x3, stride 2,
padding 1): 32x32 images enter the first stage at 18x18 and the last stage runs at 3x3
(4x4 with ours).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.attention.kernel_size import KernelSizeSpec
from defcon_exp.models.blocks import (
    STAGE_WIDTHS,
    Bottleneck,
    add_head,
    build_stages,
    drop_path_rates,
    set_kernels,
)

__all__ = [
    "STEMS",
    "Bottleneck",
    "CifarResNet",
    "cifar_resnet50",
    "count_parameters",
    "drop_path_rates",
    "set_kernels",
]

RESNET50_DEPTHS = (3, 4, 6, 3)
#: stem names: ours (3x3 conv, padding 1, no max-pool) and the released code's
STEMS = ("cifar", "released")


class CifarResNet(nn.Module):
    """Bottleneck ResNet for 32x32 images. ``Tensor[B, 3, 32, 32] -> Tensor[B, num_classes]``.

    Args:
        depths: bottlenecks per stage ((3, 4, 6, 3): ResNet-50, :data:`cifar_resnet50`).
        attention: a registry name, or ``"none"``, placed in every bottleneck.
        kernel_size: resolved per stage for 1D-kernel attentions (ECA, DEFCON):
            ``"adaptive"``, ``"paper"`` (3, 5, 5, 7), an odd int or a list of four odd ints.
        fused_tail: fuse attention scaling, residual add and ReLU (same result, faster).
        stem: ``"cifar"`` (ours) or ``"released"`` (the DEFCON authors' code, see module doc).
        drop_path_rate: stochastic depth of the last bottleneck (linear in depth, see
            :func:`drop_path_rates`); 0 = off.
        kernels: ``"aten"``, ``"triton"`` or ``"auto"``, the attention maths and the block
            tail on CUDA as ATen ops or fused Triton kernels (:mod:`defcon_exp.ops.kernel_paths`).
    """

    def __init__(
        self,
        depths: tuple[int, ...] = RESNET50_DEPTHS,
        num_classes: int = 100,
        attention: str = "none",
        kernel_size: KernelSizeSpec = "adaptive",
        attention_kwargs: Mapping[str, Any] | None = None,
        fused_tail: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        stem: str = "cifar",
        drop_path_rate: float = 0.0,
        kernels: str = "aten",
    ) -> None:
        super().__init__()
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), received {drop_path_rate}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {list(STEMS)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, received {num_classes}")
        factory = {"device": device, "dtype": dtype}
        self.attention_name = attention
        self.stem_name = stem
        self.stem = _stem(stem, factory)
        plan = build_stages(Bottleneck, depths, attention, kernel_size, attention_kwargs,
                            fused_tail, drop_path_rate, factory)
        self.stages = nn.Sequential(*plan.stages)
        add_head(self, plan, "pool", num_classes, factory)
        set_kernels(self, kernels)

    def forward(self, x: Tensor) -> Tensor:
        features = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(features), 1))


def _stem(name: str, factory: dict[str, Any]) -> nn.Sequential:
    """``Tensor[B, 3, H, W] -> Tensor[B, 64, H', W']``: conv, BN, ReLU (+ max-pool)."""
    padding = 3 if name == "released" else 1
    layers = [
        nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, padding=padding, bias=False, **factory),
        nn.BatchNorm2d(STAGE_WIDTHS[0], **factory),
        nn.ReLU(inplace=True),
    ]
    if name == "released":
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


#: the paper's CIFAR ResNet-50 (:class:`CifarResNet` of depths (3, 4, 6, 3)): the builder the
#: ``model`` configs name (``cifar_resnet50(num_classes, attention, kernel_size, ...)``)
cifar_resnet50 = partial(CifarResNet, RESNET50_DEPTHS)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
