"""The hyper-parameters a run shows in TensorBoard's HPARAMS tab."""

from __future__ import annotations

from typing import Any

from defcon_exp.run.stored import flat_items

__all__ = ["HPARAM_KEYS", "hparams"]

HPARAM_KEYS = (
    "optim.name",
    "optim.lr",
    "optim.weight_decay",
    "optim.momentum",
    "scheduler.name",
    "scheduler.warmup_epochs",
    "trainer.epochs",
    "trainer.precision",
    "trainer.channels_last",
    "trainer.compile",
    "data.name",
    "data.batch_size",
    "model.kernel_size",
    "seed",
)


def hparams(container: dict[str, Any], name: str) -> dict[str, Any]:
    """``{"model": name, key: value for HPARAM_KEYS}`` of a resolved config container."""
    flat = flat_items(container)
    return {"model": name, **{k: flat.get(k) for k in HPARAM_KEYS}}
