"""Single-device speed settings: ``trainer.channels_last``, ``trainer.compile`` and
cuDNN's autotuner (on unless ``trainer.deterministic``).

Neither changes what is computed (up to float rounding), nor the checkpoints: the model's
parameters keep their names, and ``torch.compile`` wraps the model in a separate forward
module (:func:`compile_model`) while the engine saves and loads the plain one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["COMPILE_MODES", "compile_model", "memory_format", "parse_compile", "set_cudnn_benchmark"]

#: ``torch.compile`` modes accepted by ``trainer.compile`` (``true`` means ``"default"``)
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune")


def parse_compile(value: Any) -> str | None:
    """``trainer.compile`` -> a ``torch.compile`` mode, or None (no compilation).

    ``false``/``null`` -> None; ``true`` -> ``"default"``; a mode of :data:`COMPILE_MODES`
    as given.

    Raises:
        ValueError: naming the value and the accepted ones.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    raise ValueError(
        f"trainer.compile={value!r} is invalid: must be false, true (= 'default') or a "
        f"torch.compile mode {list(COMPILE_MODES)}, e.g. trainer.compile=true"
    )


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` or ``torch.preserve_format`` (for ``Tensor.to``)."""
    return torch.channels_last if channels_last else torch.preserve_format


def compile_model(model: nn.Module, mode: str | None) -> nn.Module:
    """``torch.compile(model, mode=mode)``, or ``model`` itself when ``mode`` is None.

    The result shares ``model``'s parameters and buffers; use it for forward passes only and
    keep ``model`` for ``state_dict()`` (the compiled wrapper prefixes every key with
    ``_orig_mod.``).

    Shapes are static (``dynamic=False``): the training batch and the (padded) evaluation
    batch each keep one shape (see :func:`defcon_exp.engine.loop.evaluate` and the training
    loader's ``drop_last`` under compile), so the model compiles once per mode, with kernels
    specialised to the batch size, and never falls back to dynamic shapes.
    """
    if mode is None:
        return model
    return torch.compile(model, mode=mode, dynamic=False)


def set_cudnn_benchmark(deterministic: bool) -> bool:
    """Turn cuDNN's autotuner on (the fastest convolution algorithm for each input shape,
    found in the first steps; with static shapes there are only a few) unless
    ``deterministic`` (autotuning may pick a different, non-bitwise-reproducible algorithm
    per run). Returns the setting."""
    torch.backends.cudnn.benchmark = not deterministic
    return torch.backends.cudnn.benchmark
