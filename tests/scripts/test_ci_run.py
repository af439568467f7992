"""`.ci/run`: it runs the README's test command verbatim, and a failure in it fails CI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_test_command() -> str:
    """The test part of the README's second command (after the venv and its activation)."""
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    install_and_test = blocks[1].strip()
    return install_and_test.split(" && ", 2)[2]


def guarded_line() -> str:
    command = readme_test_command()
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if command in line]
    assert len(lines) == 1, f"the README's test command {command!r} is not once in .ci/run"
    return lines[0]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert readme_test_command().startswith("pip install -e '.[test]' && pytest")
    assert guarded_line().strip() == f"( {readme_test_command()} )"


@pytest.mark.parametrize("failing", ["pip", "pytest", "ruff"])
def test_a_failure_in_the_readme_command_fails_ci(failing: str) -> None:
    # the line as .ci/run has it, under its shell options, with stand-ins for the three tools
    stubs = "; ".join(f"{tool}() {{ return {7 if tool == failing else 0}; }}"
                      for tool in ("pip", "pytest", "ruff"))
    script = f"set -euo pipefail\n{stubs}\n{guarded_line()}\necho went-on\n"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert done.returncode == 7 and "went-on" not in done.stdout, (done.returncode, done.stdout)
