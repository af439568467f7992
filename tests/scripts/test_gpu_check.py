"""scripts/gpu_check.sh refuses in one line, with a non-zero status, when no GPU is visible;
its kernel comparison (scripts/gpu_kernels.py) refuses the same way, and its decision rule
(which ``model.kernels`` the measurements recommend) is checked on made-up timings."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def _gpu_kernels():
    """scripts/gpu_kernels.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("gpu_kernels", SCRIPT.parent / "gpu_kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_runs_the_kernel_comparison_and_both_launch_counts():
    text = SCRIPT.read_text()
    assert "scripts/gpu_kernels.py" in text
    assert "scripts/bench_launches.py --kernels aten triton" in text


def _times(defcon_triton: float, eca_triton: float, gpu_factor: float = 1.0):
    times = {("resnet50", s, "aten"): 10.0 for s in ("fp32 eager", "trainer=gpu")}
    for setting, factor in (("fp32 eager", 1.0), ("trainer=gpu", gpu_factor)):
        times["defcon", setting, "aten"] = 20.0
        times["defcon", setting, "triton"] = defcon_triton * factor
        times["eca", setting, "aten"] = 12.0
        times["eca", setting, "triton"] = eca_triton * factor
    return times


def test_decision_needs_triton_faster_everywhere_by_the_margin():
    decide = _gpu_kernels().decide
    rows, recommended = decide(_times(defcon_triton=15.0, eca_triton=11.0))
    assert recommended == "triton" and len(rows) == 4
    assert "| defcon | fp32 eager | 20.00 | 15.00 | 0.750x | triton |" in rows
    # slower in one setting for one model: ATen stays
    assert decide(_times(15.0, 11.0, gpu_factor=1.2))[1] == "aten"
    # within the margin (a 1% win) is a tie: ATen stays
    rows, recommended = decide(_times(19.9, 11.9))
    assert recommended == "aten" and all(row.endswith("| tie |") for row in rows)
    # a missing measurement never recommends Triton
    partial = _times(15.0, 11.0)
    del partial["eca", "trainer=gpu", "triton"]
    rows, recommended = decide(partial)
    assert recommended == "aten" and any("not measured" in row for row in rows)
    assert decide({})[1] == "aten"


def test_kernel_comparison_refuses_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "gpu_kernels.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "gpu_kernels: no CUDA device visible; run it on a machine with a GPU"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_kernel_comparison_code_paths_run_on_the_cpu(monkeypatch):
    """The op and step timings' code (aten and triton, eager and compiled) on one tiny shape,
    on the CPU with Triton's interpreter: what could break before the first GPU run."""
    module = _gpu_kernels()
    monkeypatch.setattr(module, "_median_ms", lambda step, rounds: step() or 1.0)  # one call
    monkeypatch.setattr(module, "STAGES", [(64, 3, 4)])
    monkeypatch.setattr(module, "OP_ATTENTIONS", ("defcon_shuffle",))
    fp32, gpu = module.op_table(batch=2, rounds=1, device=torch.device("cpu"))
    assert fp32.startswith("| defcon_shuffle | 64 | 3 | fp32 eager |") and fp32.count(" - ") == 2
    assert gpu.startswith("| defcon_shuffle | 64 | 3 | trainer=gpu |") and " - " not in gpu
    monkeypatch.setattr(module, "SETTINGS", {"fp32 eager": ("32", False, False)})
    monkeypatch.setattr(module, "MODELS", ("resnet50", "defcon"))
    times = module.step_times(batch=2, rounds=1, device=torch.device("cpu"))
    assert set(times) == {
        ("resnet50", "fp32 eager", "aten"),
        ("defcon", "fp32 eager", "aten"),
        ("defcon", "fp32 eager", "triton"),
    }
