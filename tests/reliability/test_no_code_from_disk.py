"""Issue 12.1: nothing read from a checkpoint (or a run dir's saved config) chooses what code
runs. Doctored checkpoints carry Hydra call keys (``_target_`` at several depths, ``_partial_``,
``_args_``, ``_recursive_``) whose targets would touch or truncate a marker file; every entry
point (defcon-eval, defcon-inspect, resume from the CLI and the API, defcon-report) refuses them
with one line naming the key and the file, and no marker changes."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from attention_net import tiny_net_config

from defcon_exp.cli import eval as eval_cli
from defcon_exp.cli import inspect as inspect_cli
from defcon_exp.engine.checkpoint import load_checkpoint, save_checkpoint
from defcon_exp.run.plan import plan_resume
from defcon_exp.run.train import train
from defcon_exp.safety import UnsafeConfigError


def payloads(marker: Path) -> dict[str, tuple[list[str], object]]:
    """name -> (config path to set, value): each would create or truncate ``marker``."""
    touch = {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}
    truncate = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    return {
        "kwargs_depth2": (["model", "attention_kwargs", "gate_factory"], touch),
        "kwargs_depth4": (["model", "attention_kwargs", "a", "b", "c"], truncate),
        "model_target": (["model", "_target_"], "pathlib.Path.touch"),
        "partial_on_allowed_target": (["optim", "_partial_"], True),
        "recursive_flag": (["scheduler", "_recursive_"], False),
        "args_only": (["model", "attention_kwargs", "_args_"], [str(marker)]),
        "in_a_list": (["scheduler", "milestones"], [1, touch]),
        "top_level": (["extra"], truncate),
        "torch_load_pickle": (
            ["model", "attention_kwargs", "x"],
            {"_target_": "torch.load", "f": str(marker), "weights_only": False},
        ),
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("victim") / "run"
    train(tiny_net_config(run, "trainer.epochs=1"))
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()
    return run


def doctored_copy(run: Path, where: Path, path: list[str], value: object) -> Path:
    """A copy of ``run`` whose best.pt and last.pt configs carry ``value`` at ``path``."""
    shutil.copytree(run, where)
    for name in ("best.pt", "last.pt"):
        ckpt = where / "checkpoints" / name
        state = load_checkpoint(ckpt)
        node = state["config"]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = copy.deepcopy(value)
        save_checkpoint(state, ckpt)
    return where


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "marker.txt"
    path.write_text("precious")
    return path


def assert_untouched(marker: Path) -> None:
    assert marker.read_text() == "precious"
    assert sorted(p.name for p in marker.parent.iterdir() if p.name.startswith("marker")) == ["marker.txt"]


@pytest.mark.parametrize("name", list(payloads(Path("m"))))
def test_eval_and_inspect_refuse_every_payload(
    name: str, trained_run: Path, tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture
) -> None:
    path, value = payloads(marker)[name]
    doctored = doctored_copy(trained_run, tmp_path / "doctored", path, value)
    for ckpt in ("best.pt", "last.pt"):
        target = doctored / "checkpoints" / ckpt
        assert eval_cli.main([f"ckpt={target}", f"out={tmp_path / 'e.json'}"]) == 1
        assert inspect_cli.main([f"ckpt={target}", "n_images=2", f"out={tmp_path / 'i'}"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2, err  # one line per tool
        for line in err:
            assert "was refused" in line and str(target) in line and "_" in line.split("=")[0]
    assert_untouched(marker)
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("name", ["kwargs_depth2", "model_target", "partial_on_allowed_target", "in_a_list"])
def test_resume_refuses_payloads_cli_and_api(name: str, trained_run: Path, tmp_path: Path, marker: Path) -> None:
    path, value = payloads(marker)[name]
    doctored = doctored_copy(trained_run, tmp_path / "doctored", path, value)
    cfg = tiny_net_config(tmp_path / "unused", f"resume={doctored}", "trainer.epochs=2")
    with pytest.raises(UnsafeConfigError, match="was refused") as cli_err:
        plan_resume(cfg, ["trainer.epochs=2"])  # the CLI path: the stored config + overrides
    assert str(doctored / "checkpoints" / "last.pt") in str(cli_err.value)
    with pytest.raises(UnsafeConfigError, match="was refused"):
        train(cfg)  # the API path: the stored config is checked too
    assert_untouched(marker)
    assert load_checkpoint(doctored / "checkpoints" / "last.pt")["epoch"] == 1  # nothing trained


def test_the_same_payload_would_run_through_hydra_instantiate(tmp_path: Path, marker: Path) -> None:
    """The payloads are real: Hydra's instantiate (which the tools no longer use) runs them."""
    from hydra.utils import instantiate

    instantiate({"_target_": "pathlib.Path.touch", "_args_": [str(tmp_path / "marker-made")]})
    assert (tmp_path / "marker-made").exists()


def test_report_does_not_build_a_doctored_model(trained_run: Path, tmp_path: Path, marker: Path) -> None:
    from defcon_exp.analysis.report_rows import count_flops

    with pytest.raises(UnsafeConfigError):
        count_flops({"_target_": "pathlib.Path.touch", "attention": "none"}, 10)
    with pytest.raises(UnsafeConfigError):
        count_flops({"attention": "none", "attention_kwargs": payloads(marker)["kwargs_depth2"][1]}, 10)
    assert_untouched(marker)


def test_a_text_file_as_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "fake.pt"
    fake.write_text("hello, I am not a checkpoint\n")
    assert eval_cli.main([f"ckpt={fake}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (len(err) == 1 and str(fake) in err[0] and "not a readable checkpoint" in err[0]) or "corrupt" in err[0]


def test_trusted_builders_come_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from defcon_exp.safety import TRUSTED_MODELS_ENV, check_no_code

    monkeypatch.delenv(TRUSTED_MODELS_ENV, raising=False)
    with pytest.raises(UnsafeConfigError):
        check_no_code({"model": {"_target_": "tiny_net.tiny_cifar_model"}}, "x.pt")
    monkeypatch.setenv(TRUSTED_MODELS_ENV, "tiny_net.tiny_cifar_model")
    check_no_code({"model": {"_target_": "tiny_net.tiny_cifar_model"}}, "x.pt")
    with pytest.raises(UnsafeConfigError):  # trusted as a model builder only, nowhere else
        check_no_code({"optim": {"_target_": "tiny_net.tiny_cifar_model"}}, "x.pt")


def test_trusted_entries_must_be_importable_model_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22 item 14: an entry of $DEFCON_TRUSTED_MODEL_TARGETS that is not a model builder
    (a builtin, a method, no num_classes, not importable) is refused with one line, never called."""
    from defcon_exp.models import model_from_config
    from defcon_exp.safety import TRUSTED_MODELS_ENV

    monkeypatch.setenv(TRUSTED_MODELS_ENV, "os.system,pathlib.Path.touch,shutil.rmtree,json.dumps,no_such.module_fn,"
                                           "tiny_net.tiny_cifar_model")
    for target, why in [("os.system", "is not a model builder"), ("pathlib.Path.touch", "cannot be imported"),
                        ("shutil.rmtree", "is not a model builder"), ("json.dumps", "is not a model builder"),
                        ("no_such.module_fn", "cannot be imported")]:
        with pytest.raises(UnsafeConfigError, match=why) as info:
            model_from_config({"_target_": target, "attention": "none"}, 10)
        assert target in str(info.value) and "\n" not in str(info.value)
    assert model_from_config({"_target_": "tiny_net.tiny_cifar_model"}, 10).head.out_features == 10
    monkeypatch.setenv(TRUSTED_MODELS_ENV, "tiny_net.tiny_cifar_model;rm -rf")
    with pytest.raises(UnsafeConfigError, match=r"is invalid: list model builders as module\.function"):
        model_from_config({"_target_": "tiny_net.tiny_cifar_model"}, 10)


def test_a_config_names_a_trusted_builder_by_its_registry_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """``name=module.function`` registers the builder as ``name``: a stored config names it so,
    and its import path (or any other) is refused."""
    from defcon_exp.models import model_from_config
    from defcon_exp.safety import TRUSTED_MODELS_ENV, check_no_code

    monkeypatch.setenv(TRUSTED_MODELS_ENV, "tiny=tiny_net.tiny_cifar_model")
    assert model_from_config({"_target_": "tiny"}, 7).head.out_features == 7
    check_no_code({"model": {"_target_": "tiny"}}, "x.pt")
    for other in ("tiny_net.tiny_cifar_model", "tiny_net.crashing_model"):
        with pytest.raises(UnsafeConfigError, match=r"x\.pt was refused"):
            check_no_code({"model": {"_target_": other}}, "x.pt")
