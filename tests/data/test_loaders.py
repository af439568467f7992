"""Both loader paths: the interface (len, num_samples, set_epoch), determinism in
``(seed, epoch)``, exact agreement with each other, and the augmentation distribution
(crop offsets, flip rate) against torchvision's RandomCrop + RandomHorizontalFlip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from defcon_exp.data import build_data
from defcon_exp.data.imageset import ImageSet
from defcon_exp.data.loaders import WorkerLoader
from defcon_exp.data.tensor_loader import TensorLoader

SYNTH = {"name": "synthetic", "train_size": 300, "test_size": 70, "batch_size": 32}
CHI2_8DF_P001 = 26.12  # chi-square critical value, 8 degrees of freedom, p = 0.001
CHI2_80DF_P001 = 124.84


def _epoch(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(images.clone(), labels.clone()) for images, labels in loader]


def _same(first, second) -> bool:
    return len(first) == len(second) and all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, second, strict=True)
    )


@pytest.mark.parametrize("loader", ["dataloader", "tensor"])
def test_interface(loader: str) -> None:
    bundle = build_data({**SYNTH, "loader": loader, "val_size": 50, "num_workers": 0}, seed=0)
    assert bundle.num_classes == 10 and len(bundle.classes) == 10
    assert bundle.train.num_samples == 250 and len(bundle.train) == 8  # 7 x 32 + 26
    assert bundle.val.num_samples == 50 and bundle.test.num_samples == 70
    assert len(bundle.test) == 1  # eval_batch_size 512
    batches = _epoch(bundle.train)
    assert len(batches) == len(bundle.train)
    assert sum(len(labels) for _, labels in batches) == bundle.train.num_samples
    images, labels = batches[0]
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64
    assert images.device.type == "cpu"


@pytest.mark.parametrize("loader", ["dataloader", "tensor"])
def test_pure_function_of_seed_and_epoch(loader: str) -> None:
    config = {**SYNTH, "loader": loader, "num_workers": 2, "cutout": 8}
    bundle = build_data(config, seed=7)
    first = _epoch(bundle.train)
    assert _same(first, _epoch(bundle.train))  # same epoch again: same batches
    bundle.train.set_epoch(1)
    second = _epoch(bundle.train)
    assert not _same(first, second)
    assert not torch.equal(torch.sort(first[0][1]).values, first[0][1])  # shuffled, not sequential
    bundle.train.set_epoch(0)
    assert _same(first, _epoch(bundle.train))  # a resumed run sees the same batches
    fresh = build_data(config, seed=7)
    fresh.train.set_epoch(1)
    assert _same(second, _epoch(fresh.train))  # ... even in a new process-like start
    other_seed = build_data(config, seed=8)
    assert not _same(first, _epoch(other_seed.train))


def test_worker_count_does_not_change_batches() -> None:
    runs = []
    for workers in (0, 1, 2):
        bundle = build_data({**SYNTH, "num_workers": workers, "cutout": 8}, seed=3)
        bundle.train.set_epoch(4)
        runs.append(_epoch(bundle.train))
    assert _same(runs[0], runs[1]) and _same(runs[0], runs[2])


@pytest.mark.parametrize("cutout", [0, 8])
def test_both_paths_yield_the_same_batches(cutout: int) -> None:
    config = {**SYNTH, "val_size": 40, "cutout": cutout, "num_workers": 2}
    workers = build_data({**config, "loader": "dataloader"}, seed=11)
    tensors = build_data({**config, "loader": "tensor"}, seed=11)
    for epoch in (0, 3):
        workers.train.set_epoch(epoch)
        tensors.train.set_epoch(epoch)
        first, second = _epoch(workers.train), _epoch(tensors.train)
        assert len(first) == len(second)
        for (a_img, a_lab), (b_img, b_lab) in zip(first, second, strict=True):
            assert torch.equal(a_lab, b_lab)
            torch.testing.assert_close(a_img, b_img, rtol=0, atol=1e-6)
    for split in ("val", "test"):
        a, b = _epoch(getattr(workers, split)), _epoch(getattr(tensors, split))
        assert all(
            torch.allclose(x[0], y[0], atol=1e-6) and torch.equal(x[1], y[1])
            for x, y in zip(a, b, strict=True)
        )


def test_eval_loaders_are_sequential_and_unaugmented() -> None:
    bundle = build_data({**SYNTH, "loader": "tensor", "eval_batch_size": 32}, seed=0)
    first = _epoch(bundle.test)
    bundle.test.set_epoch(5)
    assert _same(first, _epoch(bundle.test))


def test_last_batch_of_one_is_dropped_and_drop_last() -> None:
    bundle = build_data({**SYNTH, "train_size": 65, "loader": "tensor"}, seed=0)
    assert bundle.train.num_samples == 64 and len(bundle.train) == 2
    assert bundle.test.num_samples == 70  # evaluation sees every image
    bundle = build_data({**SYNTH, "train_size": 90, "drop_last": True, "loader": "tensor"}, seed=0)
    assert bundle.train.num_samples == 64 and len(bundle.train) == 2


# --- the augmentation distribution -------------------------------------------------------


def _position_image() -> np.ndarray:
    """R = row + 1, G = column + 1, B = 100: every pixel says where it came from."""
    rows, cols = np.mgrid[0:32, 0:32]
    return np.stack([rows + 1, cols + 1, np.full_like(rows, 100)], axis=-1).astype(np.uint8)


def _decode(batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(crop_y, crop_x, flip)`` of images made from :func:`_position_image`, in torchvision's
    convention (offsets in the 4 px padded image); ``batch`` in [0, 255] pixel units."""
    pixels = torch.round(batch).to(torch.int64)
    centre_r, centre_g = pixels[:, 0, 16, 16], pixels[:, 1, 16, 16]
    flip = pixels[:, 1, 16, 17] - centre_g == -1
    crop_y = centre_r - 1 - 12
    crop_x = torch.where(flip, centre_g - 1 - 11, centre_g - 1 - 12)
    return crop_y.numpy(), crop_x.numpy(), flip.numpy()


def _chi2_uniform(values: np.ndarray, bins: int) -> float:
    counts = np.bincount(values, minlength=bins)
    expected = len(values) / bins
    return float(((counts - expected) ** 2 / expected).sum())


def _chi2_two_samples(first: np.ndarray, second: np.ndarray, bins: int) -> float:
    table = np.stack([np.bincount(first, minlength=bins), np.bincount(second, minlength=bins)])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def _loader_samples(kind: str, epochs: int = 4) -> tuple[np.ndarray, ...]:
    images = ImageSet(np.repeat(_position_image()[None], 1000, axis=0), np.zeros(1000), ["one"])
    identity = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))  # keep pixel units
    if kind == "tensor":
        loader = TensorLoader(images, **identity, batch_size=250, seed=1, device="cpu", train=True)
    else:
        loader = WorkerLoader(images, **identity, batch_size=250, seed=1, train=True, num_workers=2)
    decoded = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        decoded += [_decode(batch) for batch, _ in loader]
    return tuple(np.concatenate(part) for part in zip(*decoded, strict=True))


def _torchvision_samples(count: int) -> tuple[np.ndarray, ...]:
    augment = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    image = torch.from_numpy(_position_image()).permute(2, 0, 1)
    torch.manual_seed(0)
    batch = torch.stack([augment(image) for _ in range(count)]).float()
    return _decode(batch)


@pytest.fixture(scope="module")
def torchvision_samples() -> tuple[np.ndarray, ...]:
    return _torchvision_samples(4000)


@pytest.mark.parametrize("kind", ["dataloader", "tensor"])
def test_augmentation_distribution(kind: str, torchvision_samples) -> None:
    crop_y, crop_x, flip = _loader_samples(kind)
    count = len(flip)
    assert count == 4000
    assert crop_y.min() == 0 and crop_y.max() == 8 and crop_x.min() == 0 and crop_x.max() == 8
    assert _chi2_uniform(crop_y, 9) < CHI2_8DF_P001
    assert _chi2_uniform(crop_x, 9) < CHI2_8DF_P001
    assert _chi2_uniform(crop_y * 9 + crop_x, 81) < CHI2_80DF_P001  # independent offsets
    assert abs(flip.mean() - 0.5) < 4 * np.sqrt(0.25 / count)
    # the same distribution as torchvision's own RandomCrop(32, padding=4) + flip
    tv_y, tv_x, tv_flip = torchvision_samples
    assert _chi2_two_samples(crop_y, tv_y, 9) < CHI2_8DF_P001
    assert _chi2_two_samples(crop_x, tv_x, 9) < CHI2_8DF_P001
    assert abs(flip.mean() - tv_flip.mean()) < 4 * np.sqrt(0.5 / count)
    # flips are independent of offsets
    assert abs(flip[crop_x < 4].mean() - flip[crop_x > 4].mean()) < 0.08
