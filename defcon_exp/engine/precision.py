"""Numeric precision of training and evaluation: ``trainer.precision``.

Three settings (Lightning's names; its aliases are accepted too):

* ``"32"`` (``32``, ``"32-true"``): everything in float32; no autocast, no scaler.
* ``"bf16"`` (``"bf16-mixed"``): ``torch.autocast(dtype=torch.bfloat16)`` around the forward
  pass and the loss; float32 weights and optimiser; no loss scaling (bfloat16 has float32's
  exponent range).
* ``"16-mixed"`` (``"16"``): ``torch.autocast(dtype=torch.float16)`` plus a
  ``torch.amp.GradScaler`` (dynamic loss scaling against float16 gradient underflow). Works
  on CUDA and, since torch 2.4, on CPU (the CPU scaler and CPU float16 autocast exist).

The retired ``trainer.amp`` flag maps onto these by :func:`precision_from_amp`: ``false`` ->
``"32"``; ``true`` -> what it meant, ``"16-mixed"`` on CUDA and ``"bf16"`` elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["PRECISIONS", "PRECISION_ALIASES", "autocast", "check_precision_supported",
           "grad_scaler", "parse_precision", "precision_from_amp"]

#: the canonical values of ``trainer.precision``
PRECISIONS: tuple[str, ...] = ("32", "bf16", "16-mixed")
#: every accepted spelling -> its canonical value (``32`` may arrive from YAML as an int)
PRECISION_ALIASES: dict[str, str] = {
    "32": "32",
    "32-true": "32",
    "bf16": "bf16",
    "bf16-mixed": "bf16",
    "16-mixed": "16-mixed",
    "16": "16-mixed",
}
_DTYPES: dict[str, torch.dtype | None] = {
    "32": None,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
}


def parse_precision(value: Any) -> str:
    """The canonical precision (one of :data:`PRECISIONS`) for ``value``.

    Accepts the strings of :data:`PRECISION_ALIASES` and the int ``32`` / ``16``.

    Raises:
        ValueError: naming the value and the accepted ones.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip().lower() in PRECISION_ALIASES:
        return PRECISION_ALIASES[value.strip().lower()]
    raise ValueError(
        f"trainer.precision={value!r} is invalid: must be one of {list(PRECISIONS)} "
        f"(aliases {sorted(set(PRECISION_ALIASES) - set(PRECISIONS))}), e.g. "
        "trainer.precision=bf16"
    )


def precision_from_amp(amp: bool, device: torch.device) -> str:
    """What the retired ``trainer.amp`` flag meant on ``device``: ``"32"`` when false;
    ``"16-mixed"`` (float16 + GradScaler) on CUDA and ``"bf16"`` elsewhere when true."""
    if not amp:
        return "32"
    return "16-mixed" if device.type == "cuda" else "bf16"


def check_precision_supported(precision: str, device: torch.device) -> None:
    """Raise ``ValueError`` (naming value and fix) when ``device`` cannot run ``precision``.

    CPU runs all three (float16 autocast and ``GradScaler("cpu")`` exist since torch 2.4);
    bfloat16 on CUDA needs compute capability 8.0+ (Ampere).
    """
    precision = parse_precision(precision)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"trainer.precision={precision!r} is invalid on {device}: this GPU has no native "
            "bfloat16 support (needs compute capability 8.0+); use trainer.precision=16-mixed"
        )
    if precision == "16-mixed" and device.type == "cpu":
        try:
            torch.amp.GradScaler("cpu")
        except Exception as err:  # pragma: no cover - only on torch without the CPU scaler
            raise ValueError(
                f"trainer.precision={precision!r} is invalid on the CPU with torch "
                f"{torch.__version__} ({err}); use trainer.precision=bf16 on the CPU"
            ) from None


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward-pass context of ``precision`` on ``device``: ``torch.autocast`` with
    bfloat16 or float16, or a no-op for ``"32"``."""
    dtype = _DTYPES[parse_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A ``GradScaler`` on ``device``'s type, enabled only for ``"16-mixed"``.

    A disabled scaler is a pass-through (``scale(loss)`` is ``loss``, ``step`` is
    ``optimizer.step()``), so the loop has one code path for every precision.
    """
    enabled = parse_precision(precision) == "16-mixed"
    return torch.amp.GradScaler(device.type, enabled=enabled)
