"""``trainer.limit_{train,val,test}_batches``: a few batches of a phase (debug runs), with
Lightning's semantics: an int is a count of batches, a float in (0, 1] a fraction of them
(``1.0``, the default, = all; a fraction keeps at least one batch).

A limited loader yields the first ``n`` batches of its loader's epoch order, which is a pure
function of seed and epoch: the schedule counts the limited epoch, and a mid-epoch resume skips
the same batches it trained before (exact). Torch-free: the config checks import it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

__all__ = ["LIMIT_KEYS", "LimitedLoader", "check_limit", "check_limits", "limit_bundle",
           "limited_count"]

#: the trainer keys, by the data bundle's loader they limit
LIMIT_KEYS = {"train": "limit_train_batches", "val": "limit_val_batches",
              "test": "limit_test_batches"}


def check_limit(key: str, value: Any) -> None:
    """Refuse a limit that is neither an int >= 1 nor a float in (0, 1]."""
    count = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    fraction = isinstance(value, float) and 0.0 < value <= 1.0
    if not (count or fraction):
        raise ValueError(
            f"trainer.{key}={value!r} is invalid: must be a number of batches (an int >= 1, "
            "e.g. 5) or a fraction of them (a float in (0, 1], e.g. 0.25; 1.0 = all)"
        )


def check_limits(get: Any, rule: Any) -> None:
    """The three limits of a composed config (``get(key)``; ``rule(key, ok, text)`` raises)."""
    for key in LIMIT_KEYS.values():
        try:
            check_limit(key, get(f"trainer.{key}"))
        except ValueError as err:
            rule(f"trainer.{key}", False, str(err).partition("is invalid: ")[2])


def limited_count(batches: int, limit: int | float) -> int:
    """Batches of a phase of ``batches`` under ``limit`` (see the module docstring)."""
    if isinstance(limit, float):
        return batches if limit >= 1.0 else min(batches, max(1, int(batches * limit)))
    return min(batches, limit)


class LimitedLoader:
    """The first ``batches`` batches of ``loader`` each epoch; ``len()`` says so."""

    def __init__(self, loader: Any, batches: int) -> None:
        self.loader, self.batches = loader, batches
        self.batch_size = loader.batch_size
        self.num_samples = min(loader.num_samples, batches * loader.batch_size)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.batches)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __getattr__(self, name: str) -> Any:  # the wrapped loader's other attributes
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


def limit_bundle(bundle: Any, trainer: Any) -> Any:
    """``bundle`` (a :class:`~defcon_exp.data.build.DataBundle`) with each phase's loader
    limited by ``trainer``'s ``limit_*_batches``; unlimited loaders are kept as they are."""
    changes = {}
    for phase, key in LIMIT_KEYS.items():
        loader, limit = getattr(bundle, phase), trainer.get(key, 1.0)
        if loader is None:
            continue
        check_limit(key, limit)
        count = limited_count(len(loader), limit)
        if count < len(loader):
            changes[phase] = LimitedLoader(loader, count)
    return replace(bundle, **changes) if changes else bundle
