"""The Optuna sweeper refuses before it writes: no code from its config, storages Optuna cannot
use or must not write, keywords a config cannot give, a swept or changed objective, a search
space that can sample values the fixed settings refuse, and a second sweeper on one study.
Each refusal is a ConfigError naming the value and the fix (printed as one line by the plugin;
the real command is driven in test_sweeper_cli.py)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError

optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")

from defcon_exp.run.optuna_objects import build_pruner, build_sampler  # noqa: E402
from defcon_exp.run.study_lock import check_study_free, hold_study_lock  # noqa: E402
from defcon_exp.run.sweep_checks import SweeperGuard, check_storage  # noqa: E402
from defcon_exp.run.sweeper import OptunaSweeperImpl  # noqa: E402

TINY = ["data=synthetic", "data.val_size=16", "trainer.epochs=2"]


def compose_cfg(*overrides: str, hydra: bool = False):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def sweeper(tmp_path: Path, *overrides: str, **settings) -> OptunaSweeperImpl:
    impl = OptunaSweeperImpl(params={"optim.lr": "interval(0.01, 0.1)"}, **settings)
    impl.args = [*TINY, *overrides]  # the task overrides Hydra passes to sweep()
    impl.config = compose_cfg(*impl.args)
    impl.sweep_dir = tmp_path / "sweep"
    return impl


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_sweeper_config_never_runs_code(tmp_path: Path, capsys) -> None:
    payload = tmp_path / "PWNED"
    for extra in (["hydra.sweeper._recursive_=true"], []):
        cfg = compose_cfg("hydra/sweeper=optuna", *extra, "+hydra.sweeper.pruner.x._target_=pathlib.Path.touch",
                          f"+hydra.sweeper.pruner.x._args_=[{payload}]", hydra=True)
        with pytest.raises(SystemExit) as stop:
            SweeperGuard().on_multirun_start(config=cfg)
        assert stop.value.code == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("defcon-train: error: hydra.sweeper.")
        assert ("_recursive_=True is invalid" if extra else "pruner.x._target_=") in err
    assert not payload.exists()
    SweeperGuard().on_multirun_start(config=compose_cfg("hydra/sweeper=optuna", hydra=True))  # fine


def test_sampler_and_pruner_keywords_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match=r"sampler.gamma=1 is invalid: .*no keyword 'gamma'"):
        build_sampler({"_target_": "optuna.samplers.TPESampler", "gamma": 1})  # takes code
    with pytest.raises(ConfigError, match=r"pruner.n_warmup_step=2 .* did you mean n_warmup_steps"):
        build_pruner({"_target_": "optuna.pruners.MedianPruner", "n_warmup_step": 2})
    with pytest.raises(ConfigError, match=r"TPESampler\(seed='abc'\) is invalid"):
        build_sampler({"_target_": "optuna.samplers.TPESampler", "seed": "abc"})


@pytest.mark.parametrize(("url", "match"), [
    ("notaurl", "not a database URL"),
    ("mysql+mysqldb://u@h/db", "driver is not installed"),
    ("sqlite://", "in-memory database"),
    ("sqlite:////proc/study.db", "is not writable"),
    ("sqlite:///{tmp}/missing/study.db", "does not exist"),
    ("sqlite:///{tmp}/text.db", "is not a SQLite database"),
    ("sqlite:///{tmp}/empty.db", "is an empty file"),
    ("sqlite:///{tmp}/other.db", "without Optuna's tables"),
])
def test_storages_optuna_cannot_use_are_refused_untouched(tmp_path: Path, url: str, match: str) -> None:
    if "driver" in match and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("the driver is installed here")
    (tmp_path / "text.db").write_text("not a database")
    (tmp_path / "empty.db").write_bytes(b"")
    import sqlite3

    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE notes (x)")
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match=match):
        check_storage(url.format(tmp=tmp_path), tmp_path / "sweep")
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before


def test_sweeping_the_objective_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search.objective=val/top1_final,val/loss_final is invalid "
                                          r"as a search parameter: a study optimises one objective"):
        impl = sweeper(tmp_path)
        impl.sweep([*impl.args, "search.objective=val/top1_final,val/loss_final"])
    with pytest.raises(ConfigError, match=r"search.trial_number=3 is invalid: the sweeper sets it"):
        impl = sweeper(tmp_path)
        impl.sweep([*impl.args, "search.trial_number=3"])
    assert not (tmp_path / "sweep").exists()


def test_a_resumed_study_keeps_its_objective_and_direction(tmp_path: Path) -> None:
    db = tmp_path / "sweep" / "optuna.db"
    db.parent.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="defcon_search", direction="maximize")
    study.set_user_attr("objectives", ["val/top1_final"])
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=50.0))
    before = digest(db)
    for objective in ("val/loss_final", "val/top1_best"):  # another direction; same direction
        with pytest.raises(ConfigError, match=r"invalid for the stored study 'defcon_search' .*"
                                              r"optimised \['val/top1_final'\] \(maximize\)"):
            impl = sweeper(tmp_path, f"search.objective={objective}")
            impl.sweep(impl.args)
    assert digest(db) == before and sorted(p.name for p in db.parent.iterdir()) == ["optuna.db"]


def test_a_space_that_can_sample_invalid_values_is_refused_before_the_first_trial(tmp_path: Path) -> None:
    impl = sweeper(tmp_path, "trainer.epochs=1")
    with pytest.raises(ConfigError, match=r"scheduler.warmup_epochs=choice\(0, 1\) can sample 1: "
                                          r"scheduler.warmup_epochs=1.0 is invalid: .*trainer.epochs=1"):
        impl.sweep([*impl.args, "scheduler.warmup_epochs=choice(0, 1)"])
    with pytest.raises(ConfigError, match=r"model.kernel_size=range\(1, 5\) can sample 2: "):
        impl = sweeper(tmp_path, "model=defcon")
        impl.sweep([*impl.args, "model.kernel_size=range(1, 5)"])
    with pytest.raises(ConfigError, match=r"hydra/sweeper=optuna has nothing to search"):
        empty = sweeper(tmp_path)
        empty.params = {}
        empty.sweep(empty.args)
    assert not (tmp_path / "sweep").exists()


def test_one_sweeper_per_study(tmp_path: Path) -> None:
    lock = tmp_path / "optuna.db.lock"
    busy = r"the study 's' in sqlite:///x is in use by another sweeper \(pid \d+ on .*\); wait for it"
    with (hold_study_lock(lock, "'s' in sqlite:///x"), pytest.raises(ConfigError, match=busy),
          hold_study_lock(lock, "'s' in sqlite:///x")):
        pass
    check_study_free(lock, "'s' in sqlite:///x")  # released with its holder
    with hold_study_lock(lock, "'s' in sqlite:///x"), pytest.raises(ConfigError, match=busy):
        check_study_free(lock, "'s' in sqlite:///x")  # the early probe of a second sweeper
    missing = tmp_path / "never" / "optuna.db.lock"
    check_study_free(missing, "'s' in sqlite:///y")
    assert not missing.parent.exists()  # the probe creates nothing
