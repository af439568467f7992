"""A tiny CIFAR-shaped classifier without dropout, for distributed tests.

Used as ``model._target_=ddp_net.ddp_tiny_model`` (this folder on PYTHONPATH). No dropout, so
a 2-process run and a single-process run of the same config draw no different random
numbers and must end with the same weights (BatchNorm synchronised). ``DEFCON_TEST_STEP_SLEEP``
(seconds) slows every training forward pass so a test can signal a run mid-epoch.
"""

from __future__ import annotations

import os
import time
from typing import Any

from torch import Tensor, nn


class PlainNet(nn.Module):
    """conv -> BatchNorm -> ReLU -> pool -> linear."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.head = nn.Linear(32, num_classes)
        self.sleep = float(os.environ.get("DEFCON_TEST_STEP_SLEEP", "0"))

    def forward(self, images: Tensor) -> Tensor:
        if self.training and self.sleep:
            time.sleep(self.sleep)
        return self.head(self.features(images))


def ddp_tiny_model(num_classes: int = 10, attention: str = "none", kernel_size: Any = 3,
                   attention_kwargs: dict | None = None, stem: str = "cifar", device: Any = None,
                   dtype: Any = None) -> nn.Module:
    """The ``cifar_resnet50`` signature; everything but ``num_classes``/device/dtype ignored."""
    return PlainNet(num_classes).to(device=device, dtype=dtype)


#: ``defcon-train`` overrides: 2 epochs of 6 steps (global batch 8; 48 training images, 20
#: test images: 11 + 10 per process in 6 and 5 batches) in about a second per epoch
DDP_ARGS = [
    "data=synthetic", "model=resnet50", "model._target_=ddp_net.ddp_tiny_model",
    "data.train_size=48", "data.val_size=0", "data.test_size=21", "data.batch_size=8",
    "data.eval_batch_size=4", "data.loader=tensor", "data.num_workers=0", "trainer.epochs=2",
    "trainer.device=cpu", "trainer.log_every_n_steps=2", "trainer.progress=false",
    "optim.lr=0.05", "seed=3",
]
