"""Gates that turn attention logits into channel weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["GATES", "get_gate"]

GATES: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,
}


def get_gate(name: str) -> Callable[[Tensor], Tensor]:
    """The gate function called ``name``; raises ``ValueError`` listing the choices."""
    try:
        return GATES[name]
    except KeyError:
        raise ValueError(f"unknown gate {name!r}; choose one of {sorted(GATES)}") from None
