"""A tiny CIFAR-shaped classifier with the ``cifar_resnet50`` signature, for reliability tests.

Used as ``model._target_=tiny_net.tiny_cifar_model`` (``tests/reliability`` on PYTHONPATH) so
subprocess runs take seconds. ``DEFCON_TEST_STEP_SLEEP`` (seconds) slows every training
forward pass, so a test can deliver a signal while an epoch is in progress.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> BN -> ReLU -> pool -> dropout -> linear; ``kernel_size`` only changes the conv."""

    def __init__(self, num_classes: int, kernel: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel, stride=2, padding=kernel // 2), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
        )
        self.head = nn.Linear(32, num_classes)
        self.sleep = float(os.environ.get("DEFCON_TEST_STEP_SLEEP", "0"))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.training and self.sleep:
            time.sleep(self.sleep)
        return self.head(self.features(images))


def tiny_cifar_model(num_classes: int = 10, attention: str = "none", kernel_size: Any = 3,
                     attention_kwargs: dict | None = None, device: Any = None,
                     dtype: Any = None, stem: str = "cifar", drop_path_rate: float = 0.0) -> nn.Module:
    """``kernel_size``: an odd int (anything else -> 3); ``attention`` is ignored."""
    kernel = kernel_size if isinstance(kernel_size, int) else 3
    return TinyNet(num_classes, kernel).to(device=device, dtype=dtype)


#: ``defcon-train`` overrides for a run of a few seconds with :func:`tiny_cifar_model`
TINY_NET_ARGS = [
    "data=synthetic", "model=resnet50", "model._target_=tiny_net.tiny_cifar_model", "model.kernel_size=3",
    "data.train_size=64", "data.val_size=16", "data.test_size=16", "data.batch_size=8",
    "data.eval_batch_size=16", "data.loader=tensor", "data.num_workers=0", "trainer.epochs=3",
    "trainer.device=cpu", "trainer.log_every_n_steps=1", "trainer.progress=false", "optim.lr=0.05", "seed=1",
]


def crashing_model(num_classes: int = 10, **_: Any) -> nn.Module:
    """A trusted builder that fails like a bug would (not a user error)."""
    raise RuntimeError("a deliberate crash while building the model")
