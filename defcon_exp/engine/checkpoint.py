"""Atomic checkpoint writes and ``weights_only`` loads.

A checkpoint is a plain dict (keys listed in :mod:`defcon_exp.engine.run_state`) saved with
``torch.save`` through :func:`~defcon_exp.engine.atomic.atomic_write`, so a crash never
leaves a half-written ``last.pt``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defcon_exp.engine.atomic import atomic_write
from defcon_exp.rates import first_line
from defcon_exp.run_dir import run_dir_of_checkpoint  # noqa: F401 (re-exported)

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and what is wrong."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (:func:`~defcon_exp.engine.atomic.atomic_write`)."""
    return atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    A pickled object (anything but tensors and plain data) is refused, never executed.

    Raises:
        FileNotFoundError: with the path, when it does not exist.
        CheckpointError: one line naming the file and why it is not a usable checkpoint
            (truncated/corrupt, not a torch file, unsafe pickled objects, foreign content).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = next(
            (line for line in lines if "GLOBAL" in line or "Unsupported" in line),
            lines[0] if lines else type(err).__name__,
        )
        if "GLOBAL" in reason:
            raise CheckpointError(
                f"{path} was refused: it holds pickled Python objects, which are not loaded "
                f"(weights_only=True) because unpickling can run code ({reason})"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (not a torch.save file, or corrupt): {reason}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        text = first_line(err)
        raise CheckpointError(
            f"{path} is truncated or corrupt (not a complete torch checkpoint): {text}"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        found = (
            f"a dict with keys {sorted(map(str, state))[:5]}"
            if isinstance(state, dict)
            else type(state).__name__
        )
        raise CheckpointError(
            f"{path} is not a defcon_exp checkpoint (expected keys 'model' and 'config', "
            f"found {found})"
        )
    return state


def state_dict_mismatch(model: nn.Module, state_dict: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between ``model`` and ``state_dict`` (empty = compatible)."""
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in own]
    for key, value in state_dict.items():
        if key in own and isinstance(value, torch.Tensor) and value.shape != own[key].shape:
            problems.append(
                f"{key} shape {tuple(value.shape)} vs model {tuple(own[key].shape)}"
            )
    return problems


def load_model_state(
    model: nn.Module, state_dict: Mapping[str, Any], source: str | os.PathLike
) -> None:
    """``model.load_state_dict(state_dict)``, or one :class:`CheckpointError` listing the
    mismatching keys (another model/attention/class count than the checkpoint's).

    ``torch.compile`` wrappers are seen through both ways: a compiled ``model`` loads into its
    plain module, and a state dict saved from a compiled module (every key prefixed with
    ``_orig_mod.``) loads into a plain one."""
    model = getattr(model, "_orig_mod", model)
    prefix = "_orig_mod."
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        shown = ", ".join(problems[:12])
        more = f" ... and {len(problems) - 12} more" if len(problems) > 12 else ""
        raise CheckpointError(
            f"{source} does not fit this model ({len(problems)} mismatching keys: "
            f"{shown}{more}); was it trained with another model/attention or class count?"
        )
    model.load_state_dict(state_dict)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Resolve ``resume=``/``ckpt=``: a checkpoint file, or a run dir (-> ``checkpoints/last.pt``).

    Raises:
        FileNotFoundError: naming what was looked for.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.pt", path / "last.pt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no checkpoints/last.pt in run dir {path}")
    raise FileNotFoundError(f"no such run dir or checkpoint: {path}")
