"""A failed start leaves nothing behind, and a mistyped key is answered with the nearest one."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_module
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.run.job import remove_failed_start, run_job
from defcon_exp.run.override_checks import check_override_keys

TRAIN = "defcon_exp.cli.train"


def test_bad_value_is_refused_before_hydra_creates_the_run_dir(tmp_path: Path) -> None:
    result = run_module(TRAIN, ["optim.lr=-1"], tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "defcon-train: error: optim.lr=-1.0 is invalid: must be > 0"
    )
    assert list(tmp_path.iterdir()) == []  # no outputs/DATE/TIME, nothing at all


def test_missing_cifar_removes_what_the_failed_start_created(tmp_path: Path) -> None:
    run_dir = tmp_path / "outputs" / "2026-12-01" / "07-04-11_805157"  # as Hydra made it
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run_dir / "train.log").write_text("")
    (tmp_path / "outputs" / ".gitkeep").write_text("")
    overrides = [f"data.root={tmp_path / 'no_cifar'}", "data.download=false", "model=resnet50",
                 "trainer.device=cpu", "data.num_workers=0", "trainer.progress=false"]
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with pytest.raises(SystemExit) as stop:
        run_job(cfg, run_dir, None, overrides)
    assert stop.value.code == 1
    assert not run_dir.exists() and not run_dir.parent.exists()  # TIME and the empty DATE
    assert (tmp_path / "outputs").is_dir()  # outputs/ itself is not ours to remove


def test_a_dir_with_records_is_never_removed(tmp_path: Path) -> None:
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n1\n")
    assert not remove_failed_start(tmp_path / "run")
    assert (tmp_path / "run" / "metrics.csv").is_file()


@pytest.mark.parametrize(
    ("arg", "hint"),
    [
        ("trainer.epoch=3", "did you mean trainer.epochs?"),
        ("scheduler.plateau.patiense=2", "did you mean scheduler.plateau.patience?"),
        ("epochs=3", "did you mean trainer.epochs?"),
        ("optim.learning_rate=0.1", "the keys of optim are _target_, betas, eps"),
    ],
)
def test_unknown_key_names_the_nearest_valid_key(arg: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_override_keys([arg])
    message = str(err.value)
    assert message.startswith(f"{arg} is invalid: the config has no key") and hint in message
    assert "\n" not in message


def test_valid_keys_groups_and_hydra_keys_pass() -> None:
    check_override_keys([
        "trainer.epochs=3", "model=se", "optim.betas.0=0.8", "hydra/launcher=joblib",
        "hydra.run.dir=x", "+model.attention_kwargs.gate=sigmoid", "~tags", "-m", "seed=1",
    ])


def test_typo_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    result = run_module(TRAIN, ["trainer.epoch=3"], tmp_path, timeout=120)
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("defcon-train")]
    assert ours == [  # (pre-release hydra/omegaconf may add deprecation warnings around it)
        "defcon-train: error: trainer.epoch=3 is invalid: the config has no key "
        "'trainer.epoch'; did you mean trainer.epochs?"
    ]
    assert list(tmp_path.iterdir()) == []
