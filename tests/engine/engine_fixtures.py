"""Test helpers: a tiny classifier and a loader that follows the data-layer interface.

These are fixtures for engine tests (the engine is model-agnostic), not stand-ins for the
models or data packages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn


class TinyLoader:
    """Images ``Tensor[N, 3, 4, 4]`` batched with a shuffle that is a pure function of (seed, epoch)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return self.images.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.arange(self.num_samples)
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(
                self.seed * 10_000 + self.epoch))
        for start in range(0, self.num_samples, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.images[idx], self.labels[idx]


def tiny_data(n: int = 48, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable set: the class sets the mean of the image."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.randn(n, 3, 4, 4, generator=gen) * 0.5 + labels.view(-1, 1, 1, 1).float() / classes
    return images, labels


def tiny_model(classes: int = 4) -> nn.Module:
    """Linear + BatchNorm + Dropout (so RNG state matters on resume)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(16, classes))


class NaNAfter(nn.Module):
    """Wraps a model; from the ``after``-th training call on, returns ``fault(logits)``
    (NaN logits by default)."""

    def __init__(
        self,
        inner: nn.Module,
        after: int,
        fault: Callable[[torch.Tensor], torch.Tensor] = lambda logits: logits * float("nan"),
    ) -> None:
        super().__init__()
        self.inner, self.after, self.fault, self.calls = inner, after, fault, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.inner(images)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return self.fault(logits)
        return logits
