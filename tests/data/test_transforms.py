"""Transforms: shapes, dtype, normalisation, torchvision-identical crops (black padding),
Cutout as DeVries & Taylor, and the per-image and batched paths producing the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from defcon_exp.data.plan import PAD, make_epoch_plan
from defcon_exp.data.tensor_loader import augment_batch
from defcon_exp.data.transforms import CIFAR100_STATS, transform_image

MEAN = torch.tensor(CIFAR100_STATS[0])
STD = torch.tensor(CIFAR100_STATS[1])


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def test_eval_transform_is_normalisation_only() -> None:
    image = _images(1)[0]
    out = transform_image(image, MEAN, STD)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - MEAN[:, None, None]) / STD[
        :, None, None
    ]
    torch.testing.assert_close(out, expected)


def test_normalisation_statistics() -> None:
    """Normalising with a set's own mean/std gives per-channel mean 0 and std 1."""
    images = _images(200, seed=1)
    images[..., 0] //= 2  # channels with different statistics
    pixels = images.reshape(-1, 3) / 255.0
    mean, std = torch.tensor(pixels.mean(0)).float(), torch.tensor(pixels.std(0)).float()
    out = torch.stack([transform_image(image, mean, std) for image in images])
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_every_crop_matches_torchvision_random_crop() -> None:
    """torchvision's RandomCrop(32, padding=4) + flip output always equals ours for some
    (offset, flip): same padding (0 = black in pixel space), same geometry."""
    image = _images(1, seed=2)[0]
    chw = torch.from_numpy(image).permute(2, 0, 1)
    reference = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    ours = {
        (y, x, flip): transform_image(image, torch.zeros(3), torch.ones(3), y, x, flip)
        for y in range(2 * PAD + 1)
        for x in range(2 * PAD + 1)
        for flip in (False, True)
    }
    torch.manual_seed(0)
    for _ in range(40):
        theirs = v2.functional.to_dtype(reference(chw), torch.float32, scale=True)
        assert any(torch.equal(theirs, candidate) for candidate in ours.values())
    black = ours[(0, 0, False)]
    assert torch.all(black[:, :PAD, :] == 0) and torch.all(black[:, :, :PAD] == 0)


@pytest.mark.parametrize("length", [8, 16, 5])
def test_cutout_follows_devries(length: int) -> None:
    image = np.full((32, 32, 3), 200, dtype=np.uint8)
    for cy, cx in [(0, 0), (16, 16), (31, 3), (2, 30)]:
        out = transform_image(image, MEAN, STD, cutout=length, cut_y=cy, cut_x=cx)
        zero = (out == 0).all(dim=0)
        y0, y1 = max(cy - length // 2, 0), min(cy + length // 2, 32)
        x0, x1 = max(cx - length // 2, 0), min(cx + length // 2, 32)
        expected = torch.zeros(32, 32, dtype=torch.bool)
        expected[y0:y1, x0:x1] = True
        assert torch.equal(zero, expected)


@pytest.mark.parametrize("cutout", [0, 8])
def test_batched_path_equals_per_image_path(cutout: int) -> None:
    images = _images(300, seed=3)
    plan = make_epoch_plan(300, seed=5, epoch=2, shuffle=True, augment=True, cutout=cutout)
    source = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    batched = augment_batch(
        source,
        torch.from_numpy(plan.order),
        torch.from_numpy(plan.crop_y),
        torch.from_numpy(plan.crop_x),
        torch.from_numpy(plan.flip),
        MEAN,
        STD,
        cutout,
        torch.from_numpy(plan.cut_y),
        torch.from_numpy(plan.cut_x),
    )
    assert batched.shape == (300, 3, 32, 32) and batched.dtype == torch.float32
    per_image = torch.stack(
        [
            transform_image(
                images[plan.order[i]],
                MEAN,
                STD,
                int(plan.crop_y[i]),
                int(plan.crop_x[i]),
                bool(plan.flip[i]),
                cutout,
                int(plan.cut_y[i]),
                int(plan.cut_x[i]),
            )
            for i in range(300)
        ]
    )
    torch.testing.assert_close(batched, per_image, rtol=0, atol=1e-6)
