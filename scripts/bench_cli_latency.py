"""Wall time of the commands a new user types first and that should answer at once.

    python scripts/bench_cli_latency.py                  # this checkout
    python scripts/bench_cli_latency.py --source /path/to/other/checkout  # e.g. before a change

Each command runs ``--repeats`` times as ``python -m <module> ...`` in an empty temporary
folder (so nothing is written next to the checkout); the median and the range are printed
with the machine's CPU and its load average (a busy machine inflates every number).
``--source`` puts another checkout first on ``PYTHONPATH`` (bytecode writing off, so that
checkout is not touched).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (what it shows, module, arguments)
COMMANDS = [
    ("--help", "defcon_exp.cli.train", ["--help"]),
    ("bad value", "defcon_exp.cli.train", ["optim.lr=-1"]),
    ("typo", "defcon_exp.cli.train", ["trainer.epoch=3"]),
    ("report --help", "defcon_exp.cli.report", ["--help"]),
]


def cpu_name() -> str:
    """``lscpu``'s model name (platform's processor string when lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def time_command(module: str, args: list[str], env: dict[str, str], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs of ``python -m module args`` (each in a fresh folder)."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cwd:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                           capture_output=True, check=False)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--source", type=Path, default=None,
                        help="another checkout to time (first on PYTHONPATH)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if args.source is not None:
        env["PYTHONPATH"] = str(args.source.resolve())
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    source = args.source or Path(__file__).resolve().parents[1]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"source: {source}; median of {args.repeats} runs (min-max), wall seconds")
    for label, module, command in COMMANDS:
        times = time_command(module, command, env, args.repeats)
        shown = " ".join(["python -m", module, *command])
        print(f"  {label:<14} {statistics.median(times):6.2f} s  ({min(times):.2f}-{max(times):.2f})"
              f"  {shown}")


if __name__ == "__main__":
    main()
