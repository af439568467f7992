"""The synthetic set: deterministic by seed, balanced, and learnable by a small CPU model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from defcon_exp.data import build_data
from defcon_exp.data.synthetic import MAX_SYNTHETIC_CLASSES, make_synthetic


def test_deterministic_by_seed() -> None:
    first_train, first_test = make_synthetic(10, 300, 100, seed=3)
    again_train, again_test = make_synthetic(10, 300, 100, seed=3)
    other_train, _ = make_synthetic(10, 300, 100, seed=4)
    np.testing.assert_array_equal(first_train.images, again_train.images)
    np.testing.assert_array_equal(first_train.labels, again_train.labels)
    np.testing.assert_array_equal(first_test.images, again_test.images)
    assert first_train.classes == again_train.classes
    assert not np.array_equal(first_train.images, other_train.images)


def test_layout_and_balance() -> None:
    train, test = make_synthetic(7, 701, 50, seed=0)
    assert train.images.shape == (701, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (50, 32, 32, 3)
    assert train.labels.dtype == np.int64
    counts = np.bincount(train.labels, minlength=7)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 701
    assert len(set(train.classes)) == 7 and train.classes == test.classes
    assert not np.array_equal(train.images[:50], test.images)  # fresh test draws
    assert train.images.std() > 30  # real content, not a blank canvas


def test_class_is_visible_in_the_image() -> None:
    """Images of one class are closer to their class mean than to other classes' means."""
    train, _ = make_synthetic(5, 500, 10, seed=1)
    pixels = train.images.reshape(500, -1).astype(np.float64)
    means = np.stack([pixels[train.labels == c].mean(0) for c in range(5)])
    nearest = np.argmin(((pixels[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == train.labels).mean() > 0.5  # chance: 0.2


@pytest.mark.parametrize("bad", [1, MAX_SYNTHETIC_CLASSES + 1])
def test_rejects_bad_num_classes(bad: int) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic(bad, 10, 10, seed=0)


@pytest.fixture
def one_thread():
    """One intra-op thread: small ops on a busy 2-core machine are faster that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_small_cnn_learns_it_on_the_cpu(one_thread) -> None:
    torch.manual_seed(0)
    bundle = build_data(
        {
            "name": "synthetic",
            "train_size": 2000,
            "test_size": 500,
            "loader": "tensor",
            "batch_size": 64,
        },
        seed=0,
        device="cpu",
    )
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, bundle.num_classes),
    )  # fmt: skip
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(2):
        bundle.train.set_epoch(epoch)
        model.train()
        for images, labels in bundle.train:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in bundle.test:
            correct += (model(images).argmax(1) == labels).sum().item()
    accuracy = correct / bundle.test.num_samples
    assert accuracy > 0.5, f"accuracy {accuracy:.3f} after 2 epochs (chance 0.1)"


def test_normalised_with_its_own_statistics() -> None:
    config = {"name": "synthetic", "train_size": 1000, "test_size": 10, "augment": False}
    bundle = build_data(config, seed=0)
    train, _ = make_synthetic(10, 1000, 10, seed=0)
    assert bundle.mean == pytest.approx(train.channel_stats()[0])
    images = torch.cat([batch for batch, _ in bundle.train])
    assert images.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (images.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
