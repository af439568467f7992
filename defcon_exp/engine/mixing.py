"""Mixup and CutMix on whole batches on the device (timm's switching, torchvision v2's math).

The batch is paired with itself rolled by one (``batch.roll(1, 0)``), as
``torchvision.transforms.v2.MixUp`` / ``CutMix`` do; the image math is theirs, applied to the
device batch. Which of the two (or none) and the draws — lambda, the CutMix box centre — come
from ``numpy.random.default_rng([seed, epoch, batch, ...])``: a pure function of the run
seed and the batch's place in the epoch, so a resumed run mixes exactly as the straight run
and no global RNG stream is consumed. The switching follows timm's ``Mixup``
(``mixup_alpha``, ``cutmix_alpha``, ``prob``, ``switch_prob``).

The loss of a mixed batch is ``lam * CE(logits, labels) + (1 - lam) * CE(logits, rolled)``,
equal to the cross-entropy against the mixed one-hot targets (label smoothing included,
as both are linear in the target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from defcon_exp.regularisation import MixConfig

__all__ = ["MixedBatch", "Mixer", "build_mixer", "cutmix_box", "cutmix_images", "mixup_images"]

_STREAM = 0x313C  # separates these draws from the data plan's (seed, epoch, 0xDEFC0)


@dataclass
class MixedBatch:
    """``images`` ``[B, 3, H, W]`` mixed with ``images.roll(1, 0)``; ``labels`` ``[B]`` keep
    weight ``lam``, ``rolled`` ``[B]`` (= ``labels.roll(1, 0)``) get ``1 - lam``."""

    images: Tensor
    labels: Tensor
    rolled: Tensor
    lam: float

    def loss(self, criterion: nn.Module, logits: Tensor) -> Tensor:
        """The mixed cross-entropy of ``logits`` ``[B, K]`` (a scalar)."""
        if self.lam >= 1.0:
            return criterion(logits, self.labels)
        return self.lam * criterion(logits, self.labels) + (1.0 - self.lam) * criterion(
            logits, self.rolled
        )

    @property
    def dominant(self) -> Tensor:
        """``[B]``: the label with the larger share (``labels`` on a tie)."""
        return self.labels if self.lam >= 0.5 else self.rolled


def mixup_images(images: Tensor, lam: float) -> Tensor:
    """``lam * images + (1 - lam) * images.roll(1, 0)`` (torchvision v2 ``MixUp``'s math)."""
    return images.roll(1, 0).mul_(1.0 - lam).add_(images.mul(lam))


def cutmix_box(lam: float, centre_y: int, centre_x: int, height: int, width: int) -> tuple:
    """``(x1, y1, x2, y2)`` of torchvision v2 ``CutMix``: a box of side ``sqrt(1 - lam)``
    times the image's around the centre, clipped at the border; and the adjusted lambda
    ``1 - area / (H * W)`` (the share of the image left untouched)."""
    r = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(r * width), int(r * height)
    x1, y1 = max(centre_x - half_w, 0), max(centre_y - half_h, 0)
    x2, y2 = min(centre_x + half_w, width), min(centre_y + half_h, height)
    return (x1, y1, x2, y2), 1.0 - (x2 - x1) * (y2 - y1) / (width * height)


def cutmix_images(images: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """``images`` ``[B, C, H, W]`` with ``box`` pasted from ``images.roll(1, 0)``."""
    x1, y1, x2, y2 = box
    out = images.clone()
    out[..., y1:y2, x1:x2] = images.roll(1, 0)[..., y1:y2, x1:x2]
    return out


class Mixer:
    """Mixes training batches per ``trainer.mix``, drawing from ``(seed, epoch, batch)``."""

    def __init__(self, settings: MixConfig, seed: int) -> None:
        self.settings, self.seed = settings, seed

    def draw(self, epoch: int, batch: int, height: int, width: int) -> tuple[str, float, tuple]:
        """``(kind, lam, box)`` of one batch: kind ``none`` | ``mixup`` | ``cutmix``."""
        s = self.settings
        rng = np.random.default_rng([self.seed, epoch, batch, _STREAM])
        use_cutmix = s.cutmix_alpha > 0 and (s.mixup_alpha <= 0 or rng.random() < s.switch_prob)
        alpha = s.cutmix_alpha if use_cutmix else s.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        centre = (int(rng.integers(height)), int(rng.integers(width)))
        if rng.random() >= s.prob:
            return "none", 1.0, ()
        if not use_cutmix:
            return "mixup", lam, ()
        box, lam = cutmix_box(lam, *centre, height, width)
        return "cutmix", lam, box

    def __call__(self, images: Tensor, labels: Tensor, epoch: int, batch: int) -> MixedBatch:
        """Mix ``images`` ``[B, C, H, W]`` with labels ``[B]`` (batch ``batch`` of ``epoch``)."""
        kind, lam, box = self.draw(epoch, batch, images.shape[-2], images.shape[-1])
        rolled = labels.roll(1, 0)
        if kind == "mixup":
            images = mixup_images(images, lam)
        elif kind == "cutmix":
            images = cutmix_images(images, box)
        return MixedBatch(images, labels, rolled, lam)


def build_mixer(mix: MixConfig, seed: int) -> Mixer | None:
    """A :class:`Mixer` from ``trainer.mix``; None when off."""
    return Mixer(mix, seed) if mix.enabled else None
