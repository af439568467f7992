"""Bad config and resume misuse fail before training with one clear line (issue 6, points 5
and 8), and a fuzz test over random overrides (compose() + validate_config in process)."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException
from tiny_net import TINY_NET_ARGS

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.engine.checkpoint import load_checkpoint, save_checkpoint
from defcon_exp.run.launch import check_group_overrides, check_output_dirs
from defcon_exp.run.train import train


def make_cfg(*overrides: str, base: list[str] | None = None) -> DictConfig:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=[*(TINY_NET_ARGS if base is None else base), *overrides])


@pytest.mark.parametrize(("group", "choices"), [("model", ["defcon", "eca", "se", "resnet50"]),
                                                ("scheduler", ["cosine", "step"]),
                                                ("optim", ["sgd", "adamw"])])
def test_unknown_group_choice_lists_the_valid_ones(group: str, choices: list[str]) -> None:
    with pytest.raises(HydraException, match=f"Available options in '{group}'") as info:
        make_cfg(f"{group}=nope")
    for choice in choices:
        assert choice in str(info.value)


@pytest.mark.parametrize(("override", "needle"), [
    ("optim.name=rmsprop", "optim.name='rmsprop' is invalid: must be one of ['sgd', 'adamw']"),
    ("scheduler.name=linear", "scheduler.name='linear' is invalid: must be one of ["),
    ("optim.lr=0", "optim.lr=0.0 is invalid: must be > 0"),
    ("optim.lr=-0.1", "optim.lr=-0.1 is invalid: must be > 0"),
    ("data.batch_size=0", "data.batch_size=0 is invalid: must be >= 1"),
    ("model.kernel_size=4", "model.kernel_size=4 is invalid: must be 'adaptive', 'paper', an odd positive int"),
    ("model.kernel_size=0", "model.kernel_size=0 is invalid"),
    ("model.kernel_size=-3", "model.kernel_size=-3 is invalid"),
    ("model.kernel_size=[3,5,6,7]", "model.kernel_size=[3, 5, 6, 7] is invalid"),
    ("trainer.epochs=0", "trainer.epochs=0 is invalid: must be >= 1"),
    ("model.kernels=cuda", "model.kernels='cuda' is invalid: must be one of ['aten', 'triton', 'auto']"),
    ("trainer.grad_clip_norm=-1", "trainer.grad_clip_norm=-1.0 is invalid: must be null or > 0"),
    ("trainer.checkpoint_every_n_steps=-1", "trainer.checkpoint_every_n_steps=-1 is invalid: must be >= 0"),
])
def test_invalid_values_fail_before_anything_is_written(tmp_path: Path, override: str, needle: str) -> None:
    cfg = make_cfg(override)
    with pytest.raises(ConfigError) as info:
        train(cfg, run_dir=tmp_path / "run")
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["0", "[0]", "'x'", "{a: 1}"])
def test_group_override_that_is_not_a_name_lists_the_options(value: str) -> None:
    with pytest.raises(ConfigError, match=r"model=.* is invalid: a config group takes an option name.*'defcon'"):
        check_group_overrides(["trainer.epochs=1", f"model={value}"])
    check_group_overrides(["model=eca,se", "experiment=null", "optim.lr=0", "model.kernel_size=[3,5,5,7]"])


def test_unwritable_output_folder_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # works as root too, unlike chmod
    with pytest.raises(ConfigError, match=r"run_dir='.*a_file/run' is invalid: the output folder must be writable"):
        train(make_cfg(), run_dir=blocker / "run")


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_cli_precheck_refuses_an_unusable_hydra_output_dir(tmp_path: Path, key: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = [f"{key}={blocker}/run", *(["-m"] if key == "hydra.sweep.dir" else [])]
    with pytest.raises(ConfigError, match=rf"{key}='.*a_file/run' is invalid: .*a_file is not a folder"):
        check_output_dirs(args)
    check_output_dirs([f"{key}={tmp_path}/new/run"])  # creatable: fine


# ---------------------------------------------------------------- resume misuse (point 8)

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished")
    train(make_cfg("trainer.epochs=1"), run_dir=run_dir)
    return run_dir


def test_resuming_a_finished_run_does_nothing(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = finished_run / "checkpoints" / "last.pt"
    before = last.stat().st_mtime_ns, (finished_run / "summary.json").read_text()
    summary = train(make_cfg("trainer.epochs=1", f"resume={finished_run}"))
    assert "already finished" in capsys.readouterr().err
    assert (last.stat().st_mtime_ns, (finished_run / "summary.json").read_text()) == before
    assert summary["epochs"] == 1


@pytest.mark.parametrize(("override", "needle"), [
    ("model.kernel_size=5", "model.kernel_size: 3 -> 5"),
    ("model.attention=eca", "model.attention: 'none' -> 'eca'"),
    ("data.num_classes=7", "data.num_classes: 10 -> 7"),
])
def test_resume_refuses_model_changes_naming_the_keys(finished_run: Path, override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="keys that change the model") as info:
        train(make_cfg("trainer.epochs=2", override, f"resume={finished_run}"))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert load_checkpoint(finished_run / "checkpoints" / "last.pt")["epoch"] == 1


def test_mid_epoch_checkpoint_refuses_a_changed_data_order(finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    state["position"] = {"batches_done": 2, "metrics": {"sums": torch.zeros(3, dtype=torch.float64), "count": 16}}
    save_checkpoint(state, run_dir / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match=r"saved inside an epoch .*data.batch_size: 8 -> 4"):
        train(make_cfg("data.batch_size=4", f"resume={run_dir}"))


def test_resume_allows_more_epochs(tmp_path: Path) -> None:
    train(make_cfg("trainer.epochs=1"), run_dir=tmp_path)
    summary = train(make_cfg("trainer.epochs=2", "trainer.progress=true", f"resume={tmp_path}"))
    assert summary["epochs"] == 2
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2


# ------------------------------------------------------------------------------- fuzzing

KEYS = ["optim.lr", "optim.name", "data.batch_size", "trainer.epochs", "model.kernel_size", "scheduler.name",
        "trainer.grad_clip_norm", "scheduler.warmup_epochs", "trainer.device", "seed", "model", "optim",
        "scheduler", "data.val_size", "trainer.checkpoint_every_n_steps", "nonexistent.key"]
VALUES = st.one_of(
    st.integers(-3, 9).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
    st.sampled_from(["null", "[1,2]", "[3,5,5,7]", "'", "${nope}", "{a: 1}", "sgd", "adamw", "cosine", "1e-3",
                     "", "auto", "cuda:7", "paper", "true"]),
)
#: ValueError: e.g. Hydra's "Config group override must be a string" for model=0 (the CLI prints it in one line)
ALLOWED = (ConfigError, HydraException, OmegaConfBaseException, ValueError)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds}s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_random_overrides_end_in_one_clear_error(tmp_path: Path, overrides: list[tuple[str, str]]) -> None:
    args = [f"{key}={value}" for key, value in overrides]
    run_dir = tmp_path / f"run-{abs(hash(tuple(args)))}"
    cfg: DictConfig | None = None
    with time_limit(20):
        try:
            check_group_overrides(args)  # what the CLI does before Hydra composes
            cfg = make_cfg(*args)
            validate_config(cfg)
        except ALLOWED as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            assert first_line, f"{args}: empty message from {type(err).__name__}"
            if isinstance(err, ConfigError):
                assert "\n" not in str(err) and " is invalid: " in str(err), str(err)
            if isinstance(err, ConfigError) and cfg is not None:
                with pytest.raises(ConfigError):  # train() refuses before creating anything
                    train(cfg, run_dir=run_dir)
                assert not run_dir.exists()
            return
    # accepted: the values are valid (training is exercised by the other tests)
    assert cfg is not None
    assert cfg.optim.lr > 0 and cfg.trainer.epochs >= 1 and cfg.data.batch_size >= 1
