"""ResNet-50 for 32x32 inputs with a channel-attention slot in every bottleneck.

CIFAR variant: a 3x3 stride-1 stem without max-pool, bottleneck stages [3, 4, 6, 3] of widths
(64, 128, 256, 512) x 4, the attention module at the end of every bottleneck right before
the residual add (as SE-Net, ECA-Net and the DEFCON paper place it).

``stem="released"`` is the stem of the DEFCON authors' released code (``dca_resnet.py``):
``Conv2d(3, 64, 3, stride=1, padding=3)`` followed by the ImageNet max-pool (3x3, stride 2,
padding 1): 32x32 images enter the first stage at 18x18 and the last stage runs at 3x3
(4x4 with ours).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from defcon_exp.attention import (
    ChannelAttention,
    create_attention,
    get_attention_class,
    resolve_kernel_size,
)
from defcon_exp.attention.kernel_size import KernelSizeSpec
from defcon_exp.ops import scale_add_relu
from defcon_exp.ops.kernel_paths import check_kernels

__all__ = [
    "STEMS",
    "Bottleneck",
    "CifarResNet",
    "cifar_resnet50",
    "count_parameters",
    "drop_path_rates",
    "set_kernels",
]

log = logging.getLogger(__name__)

STAGE_WIDTHS = (64, 128, 256, 512)
RESNET50_DEPTHS = (3, 4, 6, 3)
#: stem names: ours (3x3 conv, padding 1, no max-pool) and the released code's
STEMS = ("cifar", "released")


def set_kernels(model: nn.Module, kernels: str) -> nn.Module:
    """Set the ``kernels`` choice (``"aten"``, ``"triton"``, ``"auto"``;
    :mod:`defcon_exp.ops.kernel_paths`) of every bottleneck (its fused tail) and channel
    attention in ``model``; returns ``model``. Any model builder's model takes it."""
    check_kernels(kernels)
    for module in model.modules():
        if isinstance(module, (Bottleneck, ChannelAttention)):
            module.kernels = kernels
    return model


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 expansion) with BN, then ``attention``, then the
    residual add and ReLU. ``Tensor[B, C_in, H, W] -> Tensor[B, 4*width, H/stride, W/stride]``.

    With ``fused_tail`` and a pooled-vector attention (SE, ECA, DEFCON, ...), scaling,
    residual add and ReLU run as one op (:func:`defcon_exp.ops.scale_add_relu`); the
    result equals the unfused ``relu(attention(out) + identity)``.

    ``drop_path_rate`` > 0: stochastic depth (``torchvision.ops.StochasticDepth``, mode
    ``row``) drops the residual branch ``attention(out)`` of a random ``rate`` share of the
    samples in training and scales the kept ones by ``1 / (1 - rate)``; in the fused tail
    the per-sample mask multiplies the channel weights, which is the same thing.
    """

    expansion = 4
    kernels = "aten"  # the fused tail's kernels (set_kernels)

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        attention: nn.Module,
        fused_tail: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        drop_path_rate: float = 0.0,
        kernels: str = "aten",
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        out_channels = width * self.expansion
        # rate 0: no module in the graph at all (the plain network, bit for bit)
        self.drop_path: nn.Module = (
            StochasticDepth(drop_path_rate, "row") if drop_path_rate > 0 else nn.Identity()
        )
        self.fused_tail = fused_tail and isinstance(attention, ChannelAttention)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(width, **factory)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False, **factory)
        self.bn2 = nn.BatchNorm2d(width, **factory)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False, **factory)
        self.bn3 = nn.BatchNorm2d(out_channels, **factory)
        self.relu = nn.ReLU(inplace=True)
        self.attention = attention  # registered here: the parameter order is the optimizer's
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False, **factory),
                nn.BatchNorm2d(out_channels, **factory),
            )
        set_kernels(self, kernels)

    def forward(self, x: Tensor) -> Tensor:
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.fused_tail:
            weights = self.drop_path(self.attention.channel_weights(out))  # [B, C, 1, 1]
            return scale_add_relu(out, weights, identity, kernels=self.kernels)
        return self.relu(self.drop_path(self.attention(out)) + identity)


class CifarResNet(nn.Module):
    """Bottleneck ResNet for 32x32 images. ``Tensor[B, 3, 32, 32] -> Tensor[B, num_classes]``."""

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
        attention_kwargs = dict(attention_kwargs or {})
        attention_class = None if attention == "none" else get_attention_class(attention)
        uses_kernel_size = bool(getattr(attention_class, "uses_kernel_size", False))
        if "kernel_size" in attention_kwargs:
            raise ValueError(
                "pass the kernel size as the model's kernel_size argument (it is resolved per "
                "stage), not inside attention_kwargs"
            )
        self.attention_name = attention
        self.stage_kernel_sizes: list[int | None] = []

        self.stem_name = stem
        self.stem = _stem(stem, factory)
        stages = []
        in_channels = STAGE_WIDTHS[0]
        block_rates = drop_path_rates(drop_path_rate, sum(depths))
        self.drop_path_rates = block_rates
        for stage, (width, depth) in enumerate(zip(STAGE_WIDTHS, depths, strict=True)):
            out_channels = width * Bottleneck.expansion
            stage_kwargs = dict(attention_kwargs)
            if uses_kernel_size:
                stage_kwargs["kernel_size"] = resolve_kernel_size(kernel_size, out_channels, stage)
            self.stage_kernel_sizes.append(stage_kwargs.get("kernel_size"))
            blocks = []
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                block_attention = create_attention(
                    attention, out_channels, **stage_kwargs, **factory
                )
                rate = block_rates[sum(depths[:stage]) + index]
                blocks.append(
                    Bottleneck(
                        in_channels,
                        width,
                        stride,
                        block_attention,
                        fused_tail,
                        drop_path_rate=rate,
                        **factory,
                    )
                )
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes, **factory)
        self._init_weights()
        set_kernels(self, kernels)
        if uses_kernel_size:
            log.info("%s: 1D kernel size per stage %s", attention, self.stage_kernel_sizes)

    def _init_weights(self) -> None:
        # As torchvision's ResNet: Kaiming-normal (fan_out) convolutions, BN weight 1 and
        # bias 0. Attention modules keep their own initialisation (DEFCON's zero offsets).
        attention_parts = {
            id(part)
            for module in self.modules()
            if isinstance(module, Bottleneck)
            for part in module.attention.modules()
        }
        for module in self.modules():
            if id(module) in attention_parts:
                continue
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        features = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(features), 1))


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Per-block drop-path rates rising linearly with depth, ``rate * l / L`` for block
    ``l = 1..L`` (Huang et al. 2016's linear decay rule; the last block gets ``rate``)."""
    return [rate * (index + 1) / blocks for index in range(blocks)]


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


def cifar_resnet50(
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
) -> CifarResNet:
    """CIFAR ResNet-50 with ``attention`` (a registry name, or ``"none"``) in every bottleneck.

    ``kernel_size`` is resolved per stage for 1D-kernel attentions (ECA, DEFCON):
    ``"adaptive"``, ``"paper"`` (3, 5, 5, 7), an odd int or a list of four odd ints.
    ``fused_tail`` fuses attention scaling, residual add and ReLU (same result, faster).
    ``stem``: ``"cifar"`` (ours) or ``"released"`` (the DEFCON authors' code, see module doc).
    ``drop_path_rate``: stochastic depth of the last bottleneck (linear in depth, see
    :func:`drop_path_rates`); 0 = off.
    ``kernels``: ``"aten"``, ``"triton"`` or ``"auto"``, the attention maths and the block
    tail on CUDA as ATen ops or fused Triton kernels (:mod:`defcon_exp.ops.kernel_paths`).
    """
    return CifarResNet(
        RESNET50_DEPTHS,
        num_classes,
        attention,
        kernel_size,
        attention_kwargs,
        fused_tail,
        device,
        dtype,
        stem=stem,
        drop_path_rate=drop_path_rate,
        kernels=kernels,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
