"""The console scripts and the packaged configs after a real (non-editable) install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY, run_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_console_scripts_from_an_installed_wheel(tmp_path: Path) -> None:
    source = tmp_path / "src"  # build from a copy: never touch the working tree
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("defcon_exp", "conf", "hydra_plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # build isolation: the build requirements come from the package index, whatever this venv holds
    subprocess.run([*pip, "wheel", "--no-deps", "-w", tmp_path / "wheel", source],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("defcon_exp-*.whl"))
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", site, wheel],
                   check=True, capture_output=True)
    assert (site / "defcon_exp" / "conf" / "experiment" / "smoke.yaml").is_file()
    for launcher in ("local_parallel", "local_submitit", "slurm_cpu", "slurm_gpu"):  # hydra/launcher=<name>
        assert (site / "defcon_exp" / "conf" / "hydra" / "launcher" / f"{launcher}.yaml").is_file(), launcher
    # the Optuna sweeper plugin (hydra/sweeper=optuna): in the shared hydra_plugins namespace
    assert (site / "hydra_plugins" / "defcon_optuna_sweeper" / "optuna_sweeper.py").is_file()
    assert not (site / "hydra_plugins" / "__init__.py").exists()  # a namespace package
    assert (site / "defcon_exp" / "conf" / "hydra" / "sweeper" / "optuna.yaml").is_file()
    assert (site / "defcon_exp" / "conf" / "hparams_search" / "defcon_optuna.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site)}
    where = run_module("", ["-c", "import defcon_exp; print(defcon_exp.__file__)"], elsewhere,
                       executable=[sys.executable], env=env)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr

    run_dir = elsewhere / "run"
    # the reliability tests' tiny CNN (a trusted builder: tests/conftest.py): what is under test
    # is the installed scripts and configs, not seconds of ResNet-50 training
    tiny_env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests" / "reliability")])}
    trained = run_module("", [*TINY, "model._target_=tiny_net.tiny_cifar_model", "trainer.epochs=1",
                              f"hydra.run.dir={run_dir}"], elsewhere,
                         executable=[str(site / "bin" / "defcon-train")], env=tiny_env)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1
    evaluated = run_module("", [f"ckpt={run_dir / 'checkpoints' / 'last.pt'}", f"out={elsewhere / 'e.json'}"],
                           elsewhere, executable=[str(site / "bin" / "defcon-eval")], env=tiny_env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((elsewhere / "e.json").read_text())["num_images"] == 16
    helped = run_module("", ["--help"], elsewhere, executable=[str(site / "bin" / "defcon-compare")], env=env)
    assert helped.returncode == 0 and "linear CKA" in helped.stdout, helped.stderr
