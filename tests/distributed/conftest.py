"""Make ``ddp_net`` and the CLI helpers importable (here and, via PYTHONPATH, in torchrun's
worker processes)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "cli", HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
