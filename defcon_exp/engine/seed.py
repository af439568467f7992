"""Seeding, device choice, and RNG state capture/restore in a ``weights_only``-loadable form."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        ValueError: when CUDA is asked for but unavailable, or the spec is malformed.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(
            f"trainer.device={spec!r} is invalid: use auto, cpu, cuda or cuda:N"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"trainer.device={spec!r} but CUDA is not available; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"trainer.device={spec!r} but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise ValueError(f"trainer.device={spec!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict[str, Any]:
    """Every RNG state as tensors / plain lists, loadable with ``torch.load(weights_only=True)``."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
    }


def _python_state(py: dict[str, Any]) -> tuple:
    return (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])


def _numpy_state(npy: dict[str, Any]) -> tuple:
    keys = npy["keys"].numpy().astype(np.uint32)
    return (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["gauss"])


def check_rng_state(state: dict[str, Any]) -> None:
    """Raise (TypeError, ValueError, KeyError, RuntimeError...) unless ``state`` is a state of
    :func:`capture_rng_state`: each part is loaded into a fresh generator, none global."""
    torch.Generator().set_state(state["torch"])
    cuda = state.get("cuda") or []
    if not isinstance(cuda, list) or not all(
        isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda
    ):
        raise TypeError("cuda is not a list of uint8 tensors")
    random.Random().setstate(_python_state(state["python"]))
    np.random.RandomState().set_state(_numpy_state(state["numpy"]))


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_python_state(state["python"]))
    np.random.set_state(_numpy_state(state["numpy"]))
