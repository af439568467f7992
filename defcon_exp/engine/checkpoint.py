"""Atomic checkpoint writes and ``weights_only`` loads.

A checkpoint is a plain dict (keys listed in :mod:`defcon_exp.engine.loop`) saved with
``torch.save`` to a temporary file in the destination folder, flushed, fsynced and moved
into place with ``os.replace``, so a crash never leaves a half-written ``last.pt``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: with the path, when it does not exist.
        ValueError: when the file is not a defcon_exp checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(
            f"{path} is not a defcon_exp checkpoint (expected keys 'model' and 'config')"
        )
    return state


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


def run_dir_of_checkpoint(ckpt: str | os.PathLike) -> Path:
    """The run dir holding ``ckpt`` (``<run>/checkpoints/x.pt`` -> ``<run>``)."""
    ckpt = Path(ckpt).resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
