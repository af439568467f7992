"""Where defcon-eval / defcon-compare write and what they refuse (issue 25.7, 22.12): results
named by what they hold and never replaced by a different one, compare beside its runs,
one-line refusals (out= a file, NaN weights, unknown or misspelt keys)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from staged_net import TINY_STAGED

from defcon_exp.analysis.compare_plots import binned_columns
from defcon_exp.cli import compare as compare_cli
from defcon_exp.cli import eval as eval_cli
from defcon_exp.cli import inspect as inspect_cli
from defcon_exp.run.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/se`` and ``<root>/defcon``: 1-epoch tiny trainings with weight EMA."""
    root = tmp_path_factory.mktemp("runs")
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for model in ("se", "defcon"):
            cfg = compose("config", overrides=[f"model={model}", *TINY_STAGED, "trainer.epochs=1",
                                               "trainer.ema.enabled=true"])
            train(cfg, run_dir=root / model)
    return root


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_eval_results_are_named_by_split_and_weights(runs: Path, capsys) -> None:
    ckpts = runs / "se" / "checkpoints"
    assert eval_cli.main([f"ckpt={runs / 'se'}", "weights=ema"]) == 0
    assert eval_cli.main([f"ckpt={runs / 'se'}", "split=val", "weights=raw"]) == 0
    first = (ckpts / "best.eval.test.ema.json").read_text()
    assert json.loads(first)["weights"] == "ema"
    assert json.loads((ckpts / "best.eval.val.raw.json").read_text())["split"] == "val"
    assert eval_cli.main([f"ckpt={runs / 'se'}", "weights=ema"]) == 0  # the same: refreshed
    capsys.readouterr()
    # a different measurement under the same name is refused; the first result is kept
    assert eval_cli.main([f"ckpt={runs / 'se'}", "weights=ema", "data.eval_batch_size=4"]) == 1
    assert "already holds a different result" in one_line_error(capsys)
    assert (ckpts / "best.eval.test.ema.json").read_text() == first


def test_compare_writes_beside_its_runs_and_refuses_out_a_file(
    runs: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [str(runs / "se"), str(runs / "defcon"), "images=4"]
    assert compare_cli.main(args) == 0
    assert (runs / "compare" / "se_vs_defcon" / "compare.json").is_file()
    assert list(tmp_path.iterdir()) == []  # nothing in the current folder
    (tmp_path / "taken.txt").write_text("mine")
    assert compare_cli.main([*args, f"out={tmp_path / 'taken.txt'}"]) == 1
    assert "out=" in one_line_error(capsys) and (tmp_path / "taken.txt").read_text() == "mine"


def test_unknown_and_misspelt_keys_are_one_line_with_the_nearest(runs: Path, capsys) -> None:
    assert eval_cli.main([f"ckpt={runs / 'se'}", "trainer.epoch=3"]) == 1
    assert "did you mean trainer.epochs?" in one_line_error(capsys)
    assert compare_cli.main([str(runs / "se"), str(runs / "defcon"), "trainer.devise=cpu"]) == 1
    assert "did you mean trainer.device?" in one_line_error(capsys)
    assert compare_cli.main([str(runs / "se"), str(runs / "defcon"), "image=4"]) == 2
    assert "did you mean images=?" in one_line_error(capsys)
    assert eval_cli.main([f"ckpt={runs / 'se'}", "weight=ema"]) == 2
    assert "did you mean weights=?" in one_line_error(capsys)
    assert eval_cli.main([f"ckpt={runs / 'se'}", "data.eval_batch_size=abc"]) == 1
    assert "data.eval_batch_size takes an integer" in one_line_error(capsys)


def test_nan_weights_are_refused_in_one_line(runs: Path, tmp_path: Path, capsys) -> None:
    state = torch.load(runs / "defcon" / "checkpoints" / "best.pt", weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    doctored = tmp_path / "nan.pt"
    torch.save(state, doctored)
    assert compare_cli.main([str(runs / "se"), str(doctored), f"out={tmp_path / 'c'}"]) == 1
    assert "holds NaN/Inf weights" in one_line_error(capsys)
    assert inspect_cli.main([f"ckpt={doctored}", f"out={tmp_path / 'i'}"]) == 1
    assert "holds NaN/Inf weights" in one_line_error(capsys)
    assert not (tmp_path / "c").exists() and not (tmp_path / "i").exists()


def test_class_map_columns_are_channel_means_above_512() -> None:
    table = np.arange(2 * 2048, dtype=float).reshape(2, 2048)
    binned, width = binned_columns(table)
    assert width == 4 and binned.shape == (2, 512)
    np.testing.assert_allclose(binned[0, :2], [1.5, 5.5])
    same, one = binned_columns(table[:, :100])
    assert one == 1 and same is not None and same.shape == (2, 100)
