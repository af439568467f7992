"""The residual blocks of the ResNets (CIFAR and ImageNet), each with a channel-attention slot
right before the residual add (as SE-Net, ECA-Net and the DEFCON paper place it), and the
stage builder both networks share.

Submodule names are torchvision's (``conv1``, ``bn1``, ..., ``downsample.0/1``), so a
block's state-dict keys are those of ``torchvision.models.resnet`` plus ``attention.*``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

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
    "BasicBlock",
    "Bottleneck",
    "ResidualTail",
    "StagePlan",
    "add_head",
    "build_stages",
    "drop_path_rates",
    "init_resnet_weights",
    "set_kernels",
]

log = logging.getLogger("defcon_exp.models.resnet")

STAGE_WIDTHS = (64, 128, 256, 512)


def set_kernels(model: nn.Module, kernels: str) -> nn.Module:
    """Set the ``kernels`` choice (``"aten"``, ``"triton"``, ``"auto"``;
    :mod:`defcon_exp.ops.kernel_paths`) of every block (its fused tail) and channel
    attention in ``model``; returns ``model``. Any model builder's model takes it."""
    check_kernels(kernels)
    for module in model.modules():
        if isinstance(module, (ResidualTail, ChannelAttention)):
            module.kernels = kernels
    return model


class ResidualTail(nn.Module):
    """What every block shares: the constructor (a block adds its branch, :meth:`_branch`) and
    the end ``relu(drop_path(attention(out)) + identity)``.

    With ``fused_tail`` and a pooled-vector attention (SE, ECA, DEFCON, ...), scaling,
    residual add and ReLU run as one op (:func:`defcon_exp.ops.scale_add_relu`); the
    result equals the unfused ``relu(attention(out) + identity)``.

    ``drop_path_rate`` > 0: stochastic depth (``torchvision.ops.StochasticDepth``, mode
    ``row``) drops the residual branch ``attention(out)`` of a random ``rate`` share of the
    samples in training and scales the kept ones by ``1 / (1 - rate)``; in the fused tail
    the per-sample mask multiplies the channel weights, which is the same thing.
    """

    kernels = "aten"  # the fused tail's kernels (set_kernels)
    expansion = 1  # output channels per unit of ``width``

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
        """Every block's constructor: a block differs only in its branch (:meth:`_branch`).
        Modules are made in one order (drop path, branch, shortcut), so the random initial
        weights of a seed and the state-dict key order are those of torchvision's blocks."""
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        out_channels = width * self.expansion
        # rate 0: no module in the graph at all (the plain network, bit for bit), and no
        # torchvision import (a second of start-up)
        self.drop_path: nn.Module = nn.Identity()
        if drop_path_rate > 0:
            from torchvision.ops import StochasticDepth

            self.drop_path = StochasticDepth(drop_path_rate, "row")
        self.fused_tail = fused_tail and isinstance(attention, ChannelAttention)
        self._branch(in_channels, width, stride, factory)
        self.attention = attention
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False, **factory),
                nn.BatchNorm2d(out_channels, **factory),
            )
        set_kernels(self, kernels)

    def _branch(self, in_channels: int, width: int, stride: int, factory: dict[str, Any]) -> None:
        """Make the residual branch's modules (up to its last BN) and ``relu``."""
        raise NotImplementedError

    def tail(self, out: Tensor, identity: Tensor) -> Tensor:
        """``out [B, C, H, W]`` (the residual branch before attention) -> block output."""
        if self.fused_tail:
            weights = self.drop_path(self.attention.channel_weights(out))  # [B, C, 1, 1]
            return scale_add_relu(out, weights, identity, kernels=self.kernels)
        return self.relu(self.drop_path(self.attention(out)) + identity)


class Bottleneck(ResidualTail):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 expansion) with BN, then ``attention``, then the
    residual add and ReLU (:class:`ResidualTail`); the stride sits on the 3x3 convolution
    (torchvision's "ResNet v1.5"). ``Tensor[B, C_in, H, W] -> Tensor[B, 4*width, H/s, W/s]``.
    """

    expansion = 4
    attention_input = "bn3"  # the submodule whose output the attention sees (inspect's tap)

    def _branch(self, in_channels: int, width: int, stride: int, factory: dict[str, Any]) -> None:
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(width, **factory)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False, **factory)
        self.bn2 = nn.BatchNorm2d(width, **factory)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False, **factory)
        self.bn3 = nn.BatchNorm2d(width * self.expansion, **factory)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.tail(self.bn3(self.conv3(out)), identity)


class BasicBlock(ResidualTail):
    """3x3 (stride) -> 3x3 with BN, then ``attention``, then the residual add and ReLU
    (ResNet-18/34). ``Tensor[B, C_in, H, W] -> Tensor[B, width, H/stride, W/stride]``."""

    expansion = 1
    attention_input = "bn2"

    def _branch(self, in_channels: int, width: int, stride: int, factory: dict[str, Any]) -> None:
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, padding=1, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(width, **factory)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, padding=1, bias=False, **factory)
        self.bn2 = nn.BatchNorm2d(width, **factory)

    def forward(self, x: Tensor) -> Tensor:
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.tail(self.bn2(self.conv2(out)), identity)


@dataclass
class StagePlan:
    """What :func:`build_stages` built: the stages, each stage's 1D kernel size (None for
    attentions without one), each block's drop-path rate and the last stage's channels."""

    stages: list[nn.Sequential]
    kernel_sizes: list[int | None] = field(default_factory=list)
    drop_path_rates: list[float] = field(default_factory=list)
    out_channels: int = 0


def build_stages(
    block: type[ResidualTail],
    depths: tuple[int, ...],
    attention: str,
    kernel_size: KernelSizeSpec,
    attention_kwargs: Mapping[str, Any] | None,
    fused_tail: bool,
    drop_path_rate: float,
    factory: dict[str, Any],
) -> StagePlan:
    """Four stages of ``block`` (widths 64, 128, 256, 512; stride 2 at the first block of
    stages 2-4) with ``attention`` (a registry name or ``"none"``) in every block; the 1D
    kernel size is resolved per stage from the stage's output channels."""
    if not 0 <= drop_path_rate < 1:
        raise ValueError(f"drop_path_rate must be in [0, 1), received {drop_path_rate}")
    attention_kwargs = dict(attention_kwargs or {})
    if "kernel_size" in attention_kwargs:
        raise ValueError(
            "pass the kernel size as the model's kernel_size argument (it is resolved per "
            "stage), not inside attention_kwargs"
        )
    attention_class = None if attention == "none" else get_attention_class(attention)
    uses_kernel_size = bool(getattr(attention_class, "uses_kernel_size", False))
    plan = StagePlan([], drop_path_rates=drop_path_rates(drop_path_rate, sum(depths)))
    in_channels = STAGE_WIDTHS[0]
    for stage, (width, depth) in enumerate(zip(STAGE_WIDTHS, depths, strict=True)):
        out_channels = width * block.expansion
        stage_kwargs = dict(attention_kwargs)
        if uses_kernel_size:
            stage_kwargs["kernel_size"] = resolve_kernel_size(kernel_size, out_channels, stage)
        plan.kernel_sizes.append(stage_kwargs.get("kernel_size"))
        blocks = []
        for index in range(depth):
            stride = 2 if stage > 0 and index == 0 else 1
            block_attention = create_attention(attention, out_channels, **stage_kwargs, **factory)
            rate = plan.drop_path_rates[sum(depths[:stage]) + index]
            blocks.append(
                block(
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
        plan.stages.append(nn.Sequential(*blocks))
    plan.out_channels = in_channels
    if uses_kernel_size:
        log.info("%s: 1D kernel size per stage %s", attention, plan.kernel_sizes)
    return plan


def add_head(model: nn.Module, plan: StagePlan, pool: str, num_classes: int,
             factory: dict[str, Any]) -> None:
    """After ``model``'s stages: the global average pool (named ``pool``: each ResNet keeps its
    own module names), the classifier, then torchvision's initialisation; ``model`` keeps the
    plan's per-stage kernel sizes and per-block drop-path rates. Both ResNets end so, in this
    order (the classifier is made last: a seed's initial weights stay the same)."""
    model.stage_kernel_sizes = plan.kernel_sizes
    model.drop_path_rates = plan.drop_path_rates
    setattr(model, pool, nn.AdaptiveAvgPool2d(1))
    model.fc = nn.Linear(plan.out_channels, num_classes, **factory)
    init_resnet_weights(model)


def init_resnet_weights(model: nn.Module) -> None:
    """As torchvision's ResNet: Kaiming-normal (fan_out) convolutions, BN weight 1 and bias 0
    (the classifier keeps ``nn.Linear``'s own). Attention modules keep their own
    initialisation (DEFCON's zero offsets)."""
    attention_parts = {
        id(part)
        for module in model.modules()
        if isinstance(module, ResidualTail)
        for part in module.attention.modules()
    }
    for module in model.modules():
        if id(module) in attention_parts:
            continue
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Per-block drop-path rates rising linearly with depth, ``rate * l / L`` for block
    ``l = 1..L`` (Huang et al. 2016's linear decay rule; the last block gets ``rate``)."""
    return [rate * (index + 1) / blocks for index in range(blocks)]
