"""Augmentation policies of the DataLoader path: torchvision ``transforms.v2`` RandAugment,
TrivialAugmentWide, AutoAugment (CIFAR-10 or ImageNet policy) and RandomErasing.

Each training image draws its policy's randomness from its own seed, which the epoch plan
gives its position (:func:`policy_seeds`), inside ``torch.random.fork_rng``: the images are
a pure function of ``(seed, epoch)`` whatever the worker count or scheduling, so a resumed
run sees exactly the straight run's images. The tensor loader does not run these policies;
``data.loader=tensor`` with one of them is refused (:data:`TENSOR_LOADER_OPTIONS`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import check_key

__all__ = [
    "AUTO_AUGMENT_NAMES",
    "TENSOR_LOADER_OPTIONS",
    "ImagePolicies",
    "check_policies",
    "policy_seeds",
    "seeded",
]

#: ``data.auto_augment`` values: the policy applied after crop + flip (uint8 images)
AUTO_AUGMENT_NAMES: tuple[str, ...] = (
    "none",
    "randaugment",
    "trivialaugment",
    "autoaugment_cifar10",
    "autoaugment_imagenet",
)

#: options only the ``dataloader`` path supports, and their "off" values
TENSOR_LOADER_OPTIONS: dict[str, object] = {"auto_augment": "none", "random_erasing": 0.0}

_STREAM = 0xA116  # separates the policy seeds from the plan's own draws


def check_policies(data: Any) -> None:
    """``data.auto_augment`` names a policy, ``data.random_erasing`` is a probability, and
    ``data.loader=tensor`` runs neither (``data``: a DataConfig or the config's node); the
    data layer and the config's value rules both check with this."""
    names = AUTO_AUGMENT_NAMES
    check_key(data, data.auto_augment in names, "auto_augment", f"must be one of {list(names)}")
    check_key(data, 0 <= data.random_erasing <= 1, "random_erasing", "must be in [0, 1]")
    for key, off in TENSOR_LOADER_OPTIONS.items():
        check_key(data, data.loader != "tensor" or getattr(data, key) == off, key,
                  "is not supported by data.loader=tensor; use data.loader=dataloader")


def _auto_augment(name: str) -> Any:
    """``data.auto_augment`` as a torchvision ``v2.Transform``, None for ``none``."""
    if name == "none":
        return None
    from torchvision.transforms import v2  # a second of start-up only the runs using it pay

    make = {
        "randaugment": v2.RandAugment,  # 2 ops of magnitude 9 (Cubuk et al. 2020; torchvision)
        "trivialaugment": v2.TrivialAugmentWide,
        "autoaugment_cifar10": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
        "autoaugment_imagenet": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
    }.get(name)
    if make is None:
        raise ValueError(
            f"data.auto_augment={name!r} is invalid: must be one of {list(AUTO_AUGMENT_NAMES)}"
        )
    return make()


def policy_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """``int64 [count]``: one seed per plan position of epoch ``epoch``."""
    return np.random.default_rng([seed, epoch, _STREAM]).integers(0, 2**62, size=count)


class ImagePolicies:
    """``auto_augment`` on the uint8 image, then ``RandomErasing(p=random_erasing)`` on the
    normalised one (the order of timm's CIFAR/ImageNet training transforms)."""

    def __init__(self, auto_augment: str = "none", random_erasing: float = 0.0) -> None:
        self.policy = _auto_augment(auto_augment)
        self.erasing = None
        if random_erasing > 0:
            from torchvision.transforms import v2

            self.erasing = v2.RandomErasing(p=random_erasing)

    @property
    def active(self) -> bool:
        return self.policy is not None or self.erasing is not None

    def before_normalise(self, chw: Tensor) -> Tensor:
        """``uint8 [3, H, W]`` through the policy (unchanged without one)."""
        return self.policy(chw) if self.policy is not None else chw

    def after_normalise(self, image: Tensor) -> Tensor:
        """``float32 [3, H, W]`` normalised, through RandomErasing (unchanged without it)."""
        return self.erasing(image) if self.erasing is not None else image


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside, the CPU RNG starts from ``seed``; the caller's RNG state is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
