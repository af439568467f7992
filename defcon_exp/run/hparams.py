"""The hyper-parameters a run shows in TensorBoard's HPARAMS tab."""

from __future__ import annotations

from typing import Any

from defcon_exp.keys import flat_items

__all__ = ["HPARAM_KEYS", "hparams", "kernel_size_shown"]

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


def kernel_size_shown(model: Any) -> Any:
    """``model.kernel_size`` when the model's attention has a 1D kernel (ECA, DEFCON...),
    else ``"n/a"`` (resnet50, SE, CBAM... ignore the key)."""
    from defcon_exp.attention.registry import get_attention_class, list_attentions

    attention = str(model.get("attention", "none"))
    known = attention in list_attentions() and attention != "none"
    if known and getattr(get_attention_class(attention), "uses_kernel_size", False):
        return model.get("kernel_size")
    return "n/a"


def hparams(container: dict[str, Any], name: str) -> dict[str, Any]:
    """``{"model": name, key: value for HPARAM_KEYS}`` of a resolved config container
    (``model.kernel_size`` only for attentions with a 1D kernel: :func:`kernel_size_shown`)."""
    flat = dict(flat_items(container))
    shown = {k: flat.get(k) for k in HPARAM_KEYS}
    shown["model.kernel_size"] = kernel_size_shown(container.get("model") or {})
    return {"model": name, **shown}
