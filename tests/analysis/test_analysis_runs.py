"""defcon-report and defcon-inspect on real tiny runs (synthetic data, 1 epoch, CPU; the
three runs take a few seconds on an idle machine) and on hand-made run dirs."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from defcon_exp.analysis.report import write_report
from defcon_exp.cli import inspect as inspect_cli
from defcon_exp.cli import report as report_cli
from defcon_exp.run.train import train

#: one batch of 4 training images, 4 val, 4 test: a few seconds of ResNet-50 on the CPU
TINY = [
    "data=synthetic", "data.train_size=8", "data.val_size=4", "data.test_size=4",
    "data.batch_size=4", "data.eval_batch_size=4", "data.loader=tensor", "data.num_workers=0",
    "trainer.epochs=1", "trainer.device=cpu", "trainer.log_every_n_steps=1", "optim.lr=0.01",
    "trainer.progress=false",
]
RUNS = (("resnet50", 0), ("resnet50", 1), ("defcon", 0))


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multirun-like dir with three real runs: resnet50 seeds 0 and 1, defcon seed 0."""
    root = tmp_path_factory.mktemp("multirun")
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for index, (model, seed) in enumerate(RUNS):
            cfg = compose("config", overrides=[*TINY, f"model={model}", f"seed={seed}"])
            train(cfg, run_dir=root / str(index))
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def _csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["model"]: row for row in csv.DictReader(handle)}


def _summaries(root: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in sorted(root.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        out.setdefault(summary["model"], []).append(summary)
    return out


@pytest.mark.slow
def test_report_numbers_equal_the_summaries(runs_root: Path, tmp_path: Path) -> None:
    assert report_cli.main([str(runs_root), "--out", str(tmp_path)]) == 0
    rows = _csv(tmp_path / "report.csv")
    summaries = _summaries(runs_root)
    assert set(rows) == {"resnet50", "defcon"}
    for model, runs in summaries.items():
        row = rows[model]
        top1 = [s["test"]["top1"] for s in runs]
        top5 = [s["test"]["top5"] for s in runs]
        assert int(row["n_seeds"]) == len(runs)
        assert float(row["top1_mean"]) == pytest.approx(statistics.fmean(top1))
        assert float(row["top5_mean"]) == pytest.approx(statistics.fmean(top5))
        if len(runs) > 1:
            assert float(row["top1_std"]) == pytest.approx(statistics.stdev(top1))
            assert float(row["top5_std"]) == pytest.approx(statistics.stdev(top5))
        else:
            assert row["top1_std"] == ""
        assert int(row["params"]) == runs[0]["num_params"]
        assert float(row["train_images_per_s"]) == pytest.approx(
            statistics.fmean(s["images_per_s"] for s in runs)
        )
        # FLOPs of a CIFAR ResNet-50 forward pass: ~2.6 GFLOPs (2 * MACs) per 32x32 image
        assert 2.0e9 < float(row["flops_per_image"]) < 3.2e9
        assert row["few_seeds"] == "1"  # 2 and 1 seeds: both under 3
    # defcon has a single seed: the difference is reported, the test is undefined
    assert float(rows["defcon"]["vs_resnet50_diff"]) == pytest.approx(
        summaries["defcon"][0]["test"]["top1"]
        - statistics.fmean(s["test"]["top1"] for s in summaries["resnet50"])
    )
    assert rows["defcon"]["vs_resnet50_p"] == ""
    text = (tmp_path / "report.md").read_text()
    assert "| resnet50 | synthetic | 2 † |" in text and "| defcon | synthetic | 1 † |" in text
    assert "matplotlib" in text or (tmp_path / "top1_curves.png").is_file()


@pytest.mark.slow
def test_unfinished_run_is_listed_not_fatal(runs_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs_root, root, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    running = root / "3"
    shutil.copytree(root / "2", running)  # a defcon seed 7 still "running": no summary.json
    (running / "summary.json").unlink()
    config = OmegaConf.load(running / "config.yaml")
    config.seed = 7
    OmegaConf.save(config, running / "config.yaml")
    result = write_report([root], tmp_path / "out", flops=False)
    rows = _csv(tmp_path / "out" / "report.csv")
    assert rows["defcon"]["n_seeds"] == "1" and rows["defcon"]["n_unfinished"] == "1"
    assert rows["defcon"]["seeds"] == "0"
    text = result["report_md"].read_text()
    assert "0 interrupted (resumable), 1 failed" in text
    assert f"`{running.resolve()}`: defcon, synthetic, seed 7" in text


def _fake_run(path: Path, model: str, seed: int, top1: float, scheduler: str = "step") -> None:
    path.mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create({"seed": seed, "model": {"attention": model}, "scheduler": {"name": scheduler}}),
        path / "config.yaml",
    )
    summary = {"model": model, "test": {"top1": top1, "top5": top1 + 10, "loss": 1.0},
               "num_params": 100, "images_per_s": 50.0}
    (path / "summary.json").write_text(json.dumps(summary))


def test_welch_columns_and_seed_marks(tmp_path: Path) -> None:
    values = {"resnet50": [20.0, 24.0, 28.0, 32.0], "eca": [10.0, 12.0, 14.0], "se": [1.0, 2.0]}
    for model, tops in values.items():
        for seed, top1 in enumerate(tops):
            _fake_run(tmp_path / "runs" / f"{model}_{seed}", model, seed, top1)
    write_report([tmp_path / "runs"], tmp_path, flops=False)
    rows = _csv(tmp_path / "report.csv")
    eca = rows["eca"]
    # hand values (see test_analysis_stats): t = -14 / sqrt(8), df = 64 * 27 / 424
    assert float(eca["vs_resnet50_t"]) == pytest.approx(-14.0 / math.sqrt(8.0))
    assert float(eca["vs_resnet50_df"]) == pytest.approx(64 * 27 / 424)
    assert 0.005 < float(eca["vs_resnet50_p"]) < 0.01 and eca["vs_resnet50_significant"] == "1"
    assert rows["resnet50"]["vs_eca_t"] != "" and rows["resnet50"]["vs_resnet50_t"] == ""
    assert [rows[m]["few_seeds"] for m in ("resnet50", "eca", "se")] == ["0", "0", "1"]
    text = (tmp_path / "report.md").read_text()
    assert "| se | ? | 2 † |" in text and "| eca | ? | 3 |" in text
    assert "eca vs resnet50: Δ top-1 -14.00 points is significant" in text


def test_scheduler_splits_rows_when_runs_differ(tmp_path: Path) -> None:
    _fake_run(tmp_path / "a", "eca", 0, 10.0, scheduler="step")
    _fake_run(tmp_path / "b", "eca", 0, 12.0, scheduler="cosine")
    rows = write_report([tmp_path], tmp_path / "out", flops=False)["rows"]
    assert sorted(r.label for r in rows) == ["eca / cosine", "eca / step"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| model | data | scheduler | seeds |" in text and "| eca | ? | cosine | 1 † |" in text
    assert _csv(tmp_path / "out" / "report.csv")["eca"]["scheduler"] in ("cosine", "step")


@pytest.mark.slow
def test_inspect_defcon_run(runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = runs_root / "2"
    assert inspect_cli.main([f"ckpt={run}", "n_images=4", f"out={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    assert "beyond k//2+0.5" in printed and "defcon (Defcon)" in printed
    for stage in "1234":  # the PNGs are named too, not only the JSON
        assert f"-> {tmp_path / f'inspect_stage{stage}.png'}" in printed
    stats = json.loads((tmp_path / "inspect.json").read_text())
    assert stats["num_images"] == 4 and set(stats["stages"]) == {"1", "2", "3", "4"}
    for stage, k in zip("1234", (3, 5, 5, 7), strict=True):  # model=defcon: paper kernels
        values = stats["stages"][stage]
        assert values["kernel_size"] == [k]
        # offsets start at zero and moved one SGD step: taps sit at |n - k//2|
        assert values["offset_abs_mean"] < 0.05
        expected = sum(abs(n - k // 2) for n in range(k)) / k
        assert values["channel_distance_mean"] == pytest.approx(expected, abs=0.05)
        assert values["share_beyond_half_width"] == 0.0
        assert 0.0 < values["weight_mean"] < 1.0 and values["weight_std"] >= 0.0
        channels = values["channels"]
        assert 0.99 < values["entropy_normalised"] <= 1.0 + 1e-6
        assert values["entropy_mean"] == pytest.approx(
            values["entropy_normalised"] * math.log(channels)
        )
        assert sum(values["offset_hist"]["counts"]) == 4 * k * channels * values["num_blocks"]


@pytest.mark.slow
def test_training_histograms_equal_inspect_on_the_same_images(runs_root: Path, tmp_path: Path) -> None:
    """The run logged attention histograms during training on the first val images; defcon-inspect
    on those images (split=val) and the 1-epoch checkpoint gives the same numbers."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs_root / "2"
    assert inspect_cli.main([f"ckpt={run}", "n_images=4", "split=val", f"out={tmp_path}"]) == 0
    stats = json.loads((tmp_path / "inspect.json").read_text())["stages"]
    acc = EventAccumulator(str(run / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    for stage in "1234":
        for name in ("weights", "offset", "channel_distance"):
            assert len(acc.Histograms(f"attention/stage{stage}/{name}")) == 1
        for name in ("offset_abs_mean", "channel_distance_mean", "entropy_normalised", "weight_mean"):
            logged = acc.Scalars(f"attention/stage{stage}/{name}")[0].value
            assert logged == pytest.approx(stats[stage][name], rel=1e-4, abs=1e-6), (stage, name)
    baseline = EventAccumulator(str(runs_root / "0" / "tb"))
    baseline.Reload()
    assert not baseline.Tags()["histograms"]  # plain ResNet-50: nothing to show


def test_inspect_counts_reach_beyond_the_window() -> None:
    from defcon_exp.analysis.inspect import module_statistics
    from defcon_exp.attention.defcon import Defcon

    module = Defcon(16, kernel_size=3)
    torch.nn.init.zeros_(module.offset_conv.weight)
    x = torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        module.offset_conv.weight[1, 0, 1] = 1.0  # centre tap offset = pooled value itself
        raw = module_statistics(module, x)
    pooled = x.mean(dim=(2, 3))
    assert torch.allclose(raw["offset"][:, 1, :], pooled)
    assert torch.allclose(raw["distance"][:, 1, :], pooled.abs())
    assert torch.allclose(raw["distance"][:, 0, :], torch.ones(2, 16))


def test_run_discovery_skips_hydra_dirs_and_reads_partial_runs(tmp_path: Path) -> None:
    from defcon_exp.analysis.runs import find_run_dirs, load_run

    sweep = tmp_path / "multirun"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "0" / ".hydra" / "config.yaml").write_text("seed: 3\nmodel: {attention: eca}\n")
    (sweep / "1").mkdir()
    (sweep / "1" / "metrics.csv").write_text("epoch,val_top1\n1,5.0\n2,7.5\n")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    found = find_run_dirs([sweep])
    assert found == [(sweep / "0").resolve(), (sweep / "1").resolve()]
    first, second = (load_run(p) for p in found)
    assert (first.model, first.seed, first.status) == ("eca", 3, "running/failed")
    assert (second.model, second.curve, second.epochs_done) == ("unknown", [(1, 5.0), (2, 7.5)], 2)


def test_config_differences_within_a_row_are_reported(tmp_path: Path) -> None:
    _fake_run(tmp_path / "a", "eca", 0, 10.0)
    _fake_run(tmp_path / "b", "eca", 1, 12.0)
    config = OmegaConf.load(tmp_path / "b" / "config.yaml")
    config.trainer = {"epochs": 5}
    OmegaConf.save(config, tmp_path / "b" / "config.yaml")
    write_report([tmp_path], tmp_path / "out", flops=False)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "- eca: runs differ in trainer.epochs (-, 5)" in text
    assert "differ in seed" not in text


def test_report_cli_rejects_a_missing_dir_without_writing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert report_cli.main([str(missing)]) == 1
    assert not missing.exists()


@pytest.mark.slow
def test_pngs_are_real_figures(runs_root: Path, tmp_path: Path) -> None:
    """With matplotlib (in the test extra) the report and inspect draw real PNGs: readable
    images of the advertised size with more than one colour (not blank canvases)."""
    image = pytest.importorskip("matplotlib.image")
    assert report_cli.main([str(runs_root), "--out", str(tmp_path / "report")]) == 0
    assert inspect_cli.main([f"ckpt={runs_root / '2'}", "n_images=4", f"out={tmp_path / 'inspect'}"]) == 0
    figures = [tmp_path / "report" / "top1_curves.png", tmp_path / "report" / "loss_curves.png",
               *(tmp_path / "inspect" / f"inspect_stage{s}.png" for s in "1234")]
    for path in figures:
        pixels = image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] >= 200 and pixels.shape[1] >= 300, path
        assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::97].tolist()}) > 5, path
