"""The ImageNet ResNets (18/34/50/101/152) with a channel-attention slot in every block.

torchvision's architecture (He et al. 2016, "ResNet v1.5": stride on the 3x3 convolution of
a bottleneck) and torchvision's module names (``conv1``, ``bn1``, ``maxpool``,
``layer1``-``layer4``, ``avgpool``, ``fc``), so a ``torchvision.models.resnet50`` state dict
loads into it; the attention modules add only their own ``layerN.M.attention.*`` keys. With
``attention="none"`` the network is torchvision's, output for output (tested). The blocks
and the stage builder are the CIFAR ResNet's (:mod:`defcon_exp.models.blocks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.attention.kernel_size import KernelSizeSpec
from defcon_exp.models.blocks import (
    STAGE_WIDTHS,
    BasicBlock,
    Bottleneck,
    ResidualTail,
    add_head,
    build_stages,
)

__all__ = ["IMAGENET_DEPTHS", "ImageNetResNet", "imagenet_resnet"]

#: depth -> (block, blocks per stage), as torchvision's resnet18 ... resnet152
IMAGENET_DEPTHS: dict[int, tuple[type[ResidualTail], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ImageNetResNet(nn.Module):
    """ResNet for ImageNet-size images: 7x7/2 stem + 3x3/2 max-pool, four stages, global
    average pool, linear classifier. ``Tensor[B, 3, H, W] -> Tensor[B, num_classes]``
    (any ``H, W`` >= 32; 224 is the standard).

    Args:
        depth: 18, 34, 50, 101 or 152.
        num_classes: classifier outputs (1000 for ImageNet).
        attention, kernel_size, attention_kwargs, fused_tail, drop_path_rate: as
            :class:`~defcon_exp.models.resnet.CifarResNet`.
        stem: the CIFAR model's option (``model.stem``): only its default is accepted here
            (the ImageNet stem is fixed).
    """

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 1000,
        attention: str = "none",
        kernel_size: KernelSizeSpec = "adaptive",
        attention_kwargs: Mapping[str, Any] | None = None,
        fused_tail: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        drop_path_rate: float = 0.0,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        if stem != "cifar":
            raise ValueError(
                f"model.stem={stem!r} applies to model.arch=cifar_resnet50 only (the ImageNet "
                f"ResNets have torchvision's 7x7 stem); remove it"
            )
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"unknown depth {depth}; choose one of {list(IMAGENET_DEPTHS)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, received {num_classes}")
        factory = {"device": device, "dtype": dtype}
        block, depths = IMAGENET_DEPTHS[depth]
        self.attention_name = attention
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 7, 2, padding=3, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], **factory)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        plan = build_stages(block, depths, attention, kernel_size, attention_kwargs, fused_tail,
                            drop_path_rate, factory)
        self.layer1, self.layer2, self.layer3, self.layer4 = plan.stages
        add_head(self, plan, "avgpool", num_classes, factory)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


#: ``imagenet_resnet(depth, num_classes, attention, ...)``: the ImageNet ResNet of ``depth``
imagenet_resnet = ImageNetResNet
