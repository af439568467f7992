"""Launching the Triton kernels: whether Triton is usable, the interpreter, launch listeners.

Triton is optional: :func:`triton_available` says whether it is installed (without
importing it: the answer is a constant, so ``torch.compile`` reads it without a guard that
could change), and the first launch imports the kernels module. With ``TRITON_INTERPRET=1`` set before Triton is imported its kernels run on CPU
tensors (slowly, in NumPy): that is how the tests check them without a GPU.

:func:`launch` is the only place a kernel is launched. It tells every listener (the
launch counter of :mod:`defcon_exp.engine.launch_counter`, which cannot be imported from
here) that one kernel was launched, and skips the launch itself on ``meta`` tensors, which
hold shapes only: so a train step on ``meta`` counts its Triton launches as it counts its
ATen ops.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

__all__ = [
    "add_launch_listener",
    "interpreting",
    "kernels_module",
    "launch",
    "remove_launch_listener",
    "triton_available",
]

_listeners: list[Callable[[str], None]] = []


_module: dict[str, ModuleType | None] = {}  # a plain dict, not functools.cache: dynamo reads it


def kernels_module() -> ModuleType | None:
    """:mod:`defcon_exp.ops.triton_kernels`, or None when Triton cannot be imported."""
    if "kernels" not in _module:
        try:
            from defcon_exp.ops import triton_kernels
        except ImportError:
            triton_kernels = None
        _module["kernels"] = triton_kernels
    return _module["kernels"]


_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """Whether Triton is installed (its kernels then run on CUDA, or anywhere when interpreting)."""
    return _INSTALLED


def interpreting() -> bool:
    """Whether Triton runs its kernels in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and triton_available()


def add_launch_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(kernel_name)`` on every Triton launch (until removed)."""
    _listeners.append(listener)


def remove_launch_listener(listener: Callable[[str], None]) -> None:
    _listeners.remove(listener)


def launch(name: str, grid: Sequence[int], args: Sequence[Any], **meta: Any) -> None:
    """Launch the kernel ``name`` of :mod:`~defcon_exp.ops.triton_kernels` on ``grid``
    (skipped, but still reported, when a tensor argument is on ``meta``)."""
    for listener in list(_listeners):
        listener(name)
    if any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in args):
        return
    module = kernels_module()
    if module is None:
        raise RuntimeError(f"{name}: Triton could not be imported; use model.kernels=aten")
    kernel = getattr(module, name)[tuple(grid)]
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    # Outside any dispatch mode: the CPU interpreter moves data with torch ops of its own,
    # which a launch counter must not see (on CUDA the launch is one kernel, nothing else)
    with _disable_current_modes():
        if device.type == "cuda":  # Triton launches on the current device
            with torch.cuda.device(device):
                kernel(*args, **meta)
        else:
            kernel(*args, **meta)
