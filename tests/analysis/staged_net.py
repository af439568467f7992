"""A tiny ResNet with the real model's shape where the analysis tools look: ``model.stages``,
stages of :class:`~defcon_exp.models.Bottleneck` blocks each holding an attention module.

Used as ``model._target_=staged_net.tiny_staged_net`` (listed as trusted in
``tests/conftest.py``) so real trainings for ``defcon-inspect`` / ``defcon-compare`` tests take
about a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from defcon_exp.attention import create_attention, get_attention_class, resolve_kernel_size
from defcon_exp.models import Bottleneck

#: (bottleneck width, blocks, stride) per stage: 16 and 32 channels out
STAGES = ((4, 1, 1), (8, 2, 2))


class StagedNet(nn.Module):
    """stem (3 -> 16) -> ``stages`` -> pool -> linear. ``Tensor[B, 3, H, W] -> Tensor[B, classes]``."""

    def __init__(self, num_classes: int, attention: str, kernel_size: Any,
                 attention_kwargs: Mapping[str, Any], device: Any) -> None:
        super().__init__()
        factory = {"device": device}
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False, **factory),
                                  nn.BatchNorm2d(16, **factory), nn.ReLU())
        uses_k = attention != "none" and getattr(get_attention_class(attention), "uses_kernel_size", False)
        stages, channels = [], 16
        for index, (width, depth, stride) in enumerate(STAGES):
            out = width * Bottleneck.expansion
            kwargs = dict(attention_kwargs)
            if uses_k:
                kwargs["kernel_size"] = resolve_kernel_size(kernel_size, out, index)
            blocks = []
            for block in range(depth):
                module = create_attention(attention, out, **kwargs, **factory)
                blocks.append(Bottleneck(channels, width, stride if block == 0 else 1, module, **factory))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes, **factory))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)))


def tiny_staged_net(num_classes: int = 4, attention: str = "none", kernel_size: Any = 3,
                    attention_kwargs: Mapping[str, Any] | None = None, device: Any = None,
                    dtype: Any = None, stem: Any = None, drop_path_rate: float = 0.0) -> nn.Module:
    """Takes the model config's keys (``stem`` and ``drop_path_rate`` are ignored), so ``model._target_`` can point here."""
    return StagedNet(num_classes, attention, kernel_size, attention_kwargs or {}, device).to(dtype=dtype)


#: overrides of a tiny training of :func:`tiny_staged_net` on the synthetic set (add ``model=``)
TINY_STAGED = [
    "data=synthetic", "data.num_classes=4", "data.train_size=40", "data.val_size=8",
    "data.test_size=16", "data.batch_size=8", "data.eval_batch_size=8", "data.loader=tensor",
    "data.num_workers=0", "trainer.epochs=2", "trainer.device=cpu", "trainer.progress=false",
    "trainer.log_every_n_steps=1", "optim.lr=0.05", "model._target_=staged_net.tiny_staged_net",
]
