"""scripts/gpu_check.sh refuses in one line, with a non-zero status, when no GPU is visible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def test_refuses_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "report")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device visible"), lines
    assert result.stdout == ""
    assert not (tmp_path / "report").exists()  # refused before doing anything
