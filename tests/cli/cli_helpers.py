"""Shared helpers for the CLI tests: tiny-run overrides and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: a few seconds of real ResNet-50 training on the synthetic set
TINY = [
    "data=synthetic", "model=resnet50", "data.train_size=40", "data.val_size=8", "data.test_size=16",
    "data.batch_size=16", "data.eval_batch_size=16", "data.loader=tensor", "data.num_workers=0",
    "trainer.epochs=2", "trainer.device=cpu", "trainer.log_every_n_steps=1", "optim.lr=0.01",
]


def run_module(module: str, args: Sequence[str], cwd: Path, timeout: float = 300,
               executable: Sequence[str] | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` (or ``executable args``) in ``cwd``; output captured as text."""
    command = [*(executable or [sys.executable, "-m", module]), *args]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
