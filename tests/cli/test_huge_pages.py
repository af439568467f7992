"""The console entry points turn on PyTorch's huge-page CPU allocation unless the user chose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
PROBE = """
import defcon_exp.cli.train
import re, torch
x = torch.ones(64 * 2**20 // 4)
x.add_(1)
print(re.search(r"AnonHugePages:\\s+(\\d+)", open("/proc/self/smaps_rollup").read()).group(1))
"""


def huge_kib(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def kernel_mode() -> str:
    if not THP_MODE.is_file() or not Path("/proc/self/smaps_rollup").is_file():
        pytest.skip("no transparent huge pages on this kernel (Linux only)")
    mode = re.search(r"\[(\w+)\]", THP_MODE.read_text())
    return mode.group(1) if mode else "never"


def test_entry_points_enable_huge_pages_and_respect_an_explicit_zero() -> None:
    mode = kernel_mode()
    if mode == "never":
        pytest.skip("transparent huge pages are disabled on this machine ([never])")
    assert huge_kib(None) >= 32 * 1024  # most of the 64 MiB tensor sits on 2 MiB pages
    if mode == "madvise":  # with [always] the kernel uses huge pages whatever we ask
        assert huge_kib("0") == 0
