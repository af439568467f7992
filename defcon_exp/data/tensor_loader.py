"""The fast loader path (airbench style): the whole set as one ``uint8`` tensor on the
device, random crop + flip + normalise (+ Cutout) applied to whole batches there.

No PIL, no per-image Python, no worker processes. Order and augmentation come from the same
:func:`~defcon_exp.data.plan.make_epoch_plan` as the DataLoader path, so both paths yield
the same batches for the same ``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .imageset import ImageSet
from .loaders import PlanLoader
from .plan import PAD
from .transforms import cutout_bounds

__all__ = ["TensorLoader", "augment_batch"]


def augment_batch(
    source: Tensor,
    indices: Tensor,
    crop_y: Tensor,
    crop_x: Tensor,
    flip: Tensor,
    mean: Tensor,
    std: Tensor,
    cutout: int = 0,
    cut_y: Tensor | None = None,
    cut_x: Tensor | None = None,
) -> Tensor:
    """Pick, pad + crop, flip, normalise and Cutout a batch, all on ``source.device``.

    One ``torch.take`` reads every output pixel straight from the stored set: the crop
    window (shifted by the plan's offsets, read right to left when flipped) is clamped to
    the image and the pixels that fall in the 4 px padding are set to 0 — black in pixel
    space, as torchvision's ``RandomCrop(padding=4)`` pads uint8 images.

    Args:
        source: ``uint8 [N, 3, H, W]``, the whole set.
        indices: ``int64 [B]`` images to take.
        crop_y, crop_x: ``int64 [B]`` offsets in the image zero-padded by ``PAD`` on each
            side (``PAD`` = no shift).
        flip: ``bool [B]`` mirror left-right after cropping.
        mean, std: ``float32 [3]``.
        cutout, cut_y, cut_x: Cutout length (0 = off) and ``int64 [B]`` centres.

    Returns:
        ``float32 [B, 3, H, W]``.
    """
    _, channels, height, width = source.shape
    device = source.device
    steps_y = torch.arange(height, device=device)
    steps_x = torch.arange(width, device=device)
    rows = crop_y[:, None] - PAD + steps_y  # [B, H], in unpadded coordinates
    shifted_x = crop_x[:, None] - PAD
    cols = torch.where(flip[:, None], shifted_x + (width - 1) - steps_x, shifted_x + steps_x)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None]
    planes = (indices[:, None] * channels + torch.arange(channels, device=device)) * height * width
    pixels = (
        planes[:, :, None, None]
        + (rows.clamp(0, height - 1) * width)[:, None, :, None]
        + cols.clamp(0, width - 1)[:, None, None, :]
    )  # [B, 3, H, W] flat positions in source
    picked = torch.take(source, pixels).mul_(inside[:, None])
    out = picked.to(torch.float32).mul_(1.0 / 255.0)
    out = out.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    if cutout > 0:
        if cut_y is None or cut_x is None:
            raise ValueError("augment_batch: cutout > 0 needs cut_y and cut_x")
        y0, y1 = cutout_bounds(cut_y[:, None], cutout, height)
        x0, x1 = cutout_bounds(cut_x[:, None], cutout, width)
        in_y = (steps_y >= y0) & (steps_y < y1)  # [B, H]
        in_x = (steps_x >= x0) & (steps_x < x1)  # [B, W]
        out = out.masked_fill_((in_y[:, :, None] & in_x[:, None, :])[:, None], 0.0)
    return out


class TensorLoader(PlanLoader):
    """Device-resident loader: iterates ``(float32 [B, 3, 32, 32], int64 [B])`` already on
    ``device``.

    Args:
        images: the set to load (copied once to ``device`` as ``uint8 [N, 3, 32, 32]``).
        mean, std: per-channel normalisation.
        device: where the images live and the batches are made.
        batch_size, seed, plan: ``train``, ``augment``, ``cutout``, ``drop_last``, ``rank``,
            ``world_size`` of :class:`~defcon_exp.data.loaders.PlanLoader`.
    """

    def __init__(self, images: ImageSet, mean: Sequence[float], std: Sequence[float],
                 batch_size: int, seed: int, device: torch.device, **plan: Any):
        super().__init__(len(images), batch_size, seed, **plan)
        self.device = torch.device(device)
        self.images = (
            torch.from_numpy(images.images).to(self.device).permute(0, 3, 1, 2).contiguous()
        )
        self.labels = torch.from_numpy(images.labels).to(self.device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.train:
            positions = self.sampler.positions  # this process's slice when sharded
            first = int(positions[0]) if positions is not None and len(positions) else 0
            for begin in range(0, self.num_samples, self.batch_size):
                start = first + begin
                stop = first + min(begin + self.batch_size, self.num_samples)
                images = self.images[start:stop].to(torch.float32).mul_(1.0 / 255.0)
                images = images.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))
                yield images, self.labels[start:stop]
            return
        order, crop_y, crop_x, flip, cut_y, cut_x = (
            torch.from_numpy(column).to(self.device) for column in self.sampler.columns()
        )
        for start in range(0, self.num_samples, self.batch_size):
            window = slice(start, min(start + self.batch_size, self.num_samples))
            indices = order[window]
            images = augment_batch(
                self.images, indices, crop_y[window], crop_x[window], flip[window], self.mean,
                self.std, self.cutout, cut_y[window], cut_x[window],
            )
            yield images, self.labels[indices]
