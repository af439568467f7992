"""No code from Hydra's own node: a preset (a config-group yaml) or an override that names code
through ``hydra.callbacks.*._target_``, ``hydra.launcher._target_`` / ``hydra.sweeper._target_``
or a call key nested in them is refused in one line naming the key, the value and the allowed
values, before Hydra instantiates anything (before: Hydra ran the payload, here
``pathlib.Path.touch``, while building its callbacks or launcher)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from defcon_exp.run.override_checks import check_hydra_code, composed_hydra_node
from defcon_exp.safety import HYDRA_ALLOWED_TARGETS, UnsafeConfigError, check_hydra_node

EVIL_LAUNCHER = """\
_target_: hydra._internal.core_plugins.basic_launcher.BasicLauncher
x:
  _target_: pathlib.Path.touch
  _args_: [{pwned}]
"""
EVIL_SWEEPER = """\
_target_: pathlib.Path.touch
_args_: [{pwned}]
"""


def defcon_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", "defcon_exp.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def cases(tmp: Path) -> list[tuple[list[str], str, str]]:
    """(arguments, key, value) of each payload; each would create ``tmp/PWNED``."""
    pwned = tmp / "PWNED"
    presets = tmp / "presets"
    (presets / "hydra" / "launcher").mkdir(parents=True)
    (presets / "hydra" / "sweeper").mkdir(parents=True)
    (presets / "hydra" / "launcher" / "evil.yaml").write_text(EVIL_LAUNCHER.format(pwned=pwned))
    (presets / "hydra" / "sweeper" / "evil.yaml").write_text(EVIL_SWEEPER.format(pwned=pwned))
    sweep = f"hydra.sweep.dir={tmp / 'sweep'}"
    return [
        (["+hydra.callbacks.evil._target_=pathlib.Path.touch", f"+hydra.callbacks.evil._args_=[{pwned}]"],
         "hydra.callbacks.evil._target_", "'pathlib.Path.touch'"),
        (["-m", "seed=0,1", sweep, "+hydra.callbacks.evil._target_=pathlib.Path.touch",
          f"+hydra.callbacks.evil._args_=[{pwned}]"], "hydra.callbacks.evil._target_", "'pathlib.Path.touch'"),
        (["-m", "seed=0", sweep, "+hydra.launcher.x._target_=pathlib.Path.touch",
          f"+hydra.launcher.x._args_=[{pwned}]"], "hydra.launcher.x._target_", "'pathlib.Path.touch'"),
        (["-m", "--config-dir", str(presets), "seed=0", sweep, "hydra/launcher=evil"],
         "hydra.launcher.x._target_", "'pathlib.Path.touch'"),
        (["-m", "--config-dir", str(presets), "seed=0", sweep, "hydra/sweeper=evil"],
         "hydra.sweeper._target_", "'pathlib.Path.touch'"),
        (["-m", "seed=0", sweep, "hydra.launcher._target_=os.system"], "hydra.launcher._target_", "'os.system'"),
    ]


def test_hydra_targets_from_presets_and_overrides_are_refused_before_they_run(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for args, key, value in cases(tmp_path):
        before = sorted(p.name for p in tmp_path.iterdir())
        result = defcon_train(work, *args)
        assert result.returncode == 1, (args, result.stderr[-3000:])
        assert "Traceback" not in result.stderr and result.stdout == "", (args, result.stderr)
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        line = result.stderr
        assert line.startswith(f"defcon-train: error: {key}={value} in "), line
        pattern = "hydra.callbacks.*._target_" if key.startswith("hydra.callbacks.") else key
        allowed = HYDRA_ALLOWED_TARGETS.get(pattern, ())
        assert f"(allowed for {key}: " in line and all(str(v) in line for v in allowed), line
        assert allowed or "none: remove the key" in line, line
        assert not (tmp_path / "PWNED").exists(), args  # the payload never ran
        assert sorted(p.name for p in tmp_path.iterdir()) == before and not any(work.iterdir())


@pytest.mark.parametrize("args", [
    [], ["-m"], ["-m", "hydra/launcher=local_parallel"], ["-m", "hydra/launcher=local_submitit"],
    ["-m", "hydra/launcher=slurm_gpu"], ["-m", "hydra/launcher=slurm_cpu"], ["-m", "hydra/sweeper=optuna"],
    ["hparams_search=defcon_optuna"], ["-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid"],
])
def test_the_packaged_callbacks_launchers_and_sweepers_pass(args: list[str]) -> None:
    check_hydra_code(args)  # no refusal
    node = composed_hydra_node(args)
    assert node is not None and set(node.callbacks) == {"sweeper_guard", "sweep_summary"}


def test_a_nested_call_key_below_an_allowed_target_is_refused() -> None:
    node = {"launcher": {"_target_": HYDRA_ALLOWED_TARGETS["hydra.launcher._target_"][0],
                         "n_jobs": {"_target_": "os.cpu_count"}}}
    with pytest.raises(UnsafeConfigError, match=r"hydra.launcher.n_jobs._target_='os.cpu_count' .*"
                                                r"allowed for hydra.launcher.n_jobs._target_: none"):
        check_hydra_node(node, "test")
    with pytest.raises(UnsafeConfigError, match=r"hydra\.callbacks\.x\._partial_='True'"):
        check_hydra_node({"callbacks": {"x": {"_target_": "defcon_exp.run.sweep_summary.SweepSummary",
                                              "_partial_": True}}}, "test")


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("hydra.job_logging.handlers.x.()", "os.system", "none: remove the key"),
    ("hydra.job_logging.handlers.console.class", "antigravity.Fly", "logging.StreamHandler"),
    ("hydra.hydra_logging.formatters.simple.class", "os.system", "logging.Formatter"),
    ("hydra.job_logging.handlers.console.stream", "ext://os.system", "ext://sys.stdout"),
])
def test_logging_configs_name_only_logging_code(key: str, value: str, allowed: str) -> None:
    """logging.config.dictConfig imports a ``class``, calls a ``()`` factory and imports an
    ``ext://`` object: Hydra's logging nodes may name only the logging module's own."""
    node: dict = {}
    parts = key.split(".")[1:]
    leaf = node
    for part in parts[:-1]:
        leaf = leaf.setdefault(part, {})
    leaf[parts[-1]] = value
    with pytest.raises(UnsafeConfigError, match=rf"^{key.replace('(', '[(]').replace(')', '[)]')}="
                                                rf"'{value}' in test was refused: .*{allowed}"):
        check_hydra_node(node, "test")


def test_a_logging_preset_naming_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    """A shared ``hydra/job_logging`` preset whose handler is a ``()`` factory (the override
    grammar cannot spell ``()``, a preset can)."""
    pwned = tmp_path / "PWNED"
    presets = tmp_path / "presets" / "hydra" / "job_logging"
    presets.mkdir(parents=True)
    (presets / "evil.yaml").write_text(
        f"version: 1\nhandlers:\n  x:\n    (): pathlib.Path.touch\n    self: {pwned}\n"
        "root:\n  handlers: [x]\n")
    work = tmp_path / "work"
    work.mkdir()
    result = defcon_train(work, "--config-dir", str(tmp_path / "presets"), "hydra/job_logging=evil")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("defcon-train: error: hydra.job_logging.handlers.x.()='pathlib.Path.touch'")
    assert not pwned.exists() and not any(work.iterdir())


def test_a_callback_the_runner_trusts_is_allowed_and_only_that(monkeypatch: pytest.MonkeyPatch) -> None:
    """``$DEFCON_TRUSTED_HYDRA_CALLBACKS`` (set by whoever runs the command, never read from
    disk) adds the callbacks it names, and no other target."""
    node = {"callbacks": {"mine": {"_target_": "my_lab.WandbCallback"}}}
    with pytest.raises(UnsafeConfigError, match=r"hydra\.callbacks\.mine\._target_=.my_lab\.WandbCallback."):
        check_hydra_node(node, "test")
    monkeypatch.setenv("DEFCON_TRUSTED_HYDRA_CALLBACKS", "other.Thing, my_lab.WandbCallback")
    check_hydra_node(node, "test")
    with pytest.raises(UnsafeConfigError, match=r"hydra\.launcher\._target_=.my_lab\.WandbCallback."):
        check_hydra_node({"launcher": {"_target_": "my_lab.WandbCallback"}}, "test")
