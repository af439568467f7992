"""TensorBoard reads at a glance: loss / accuracy / lr groups first, no duplicate or
single-point hparam tags, throughput logged, and run names that say what is compared."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from test_fit_resume import SCHEDULES, run_fit

from defcon_exp.engine.records import tb_dir
from defcon_exp.run.run_label import run_label

EPOCH_CURVES = {"loss/train", "loss/train_step", "top1/train", "top5/train", "trainer/lr",
                "trainer/images_per_s", "trainer/epoch_time_s"}


def events(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def hparams_metric_tags(acc: EventAccumulator) -> set[str]:
    content = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    return {m.name.tag for m in experiment.metric_infos}


@pytest.mark.parametrize("val", [True, False])
def test_tags_are_grouped_pruned_and_ordered(tmp_path: Path, val: bool) -> None:
    run_fit(tmp_path, SCHEDULES["cosine"], 2, val=val)
    acc = events(tmp_path / "tb")
    split = "val" if val else "test"
    per_epoch = {f"loss/{split}", f"top1/{split}", f"top5/{split}"}
    # with a val split the test set is evaluated once: no one-point charts of it
    assert set(acc.Tags()["scalars"]) == EPOCH_CURVES | per_epoch
    for tag in EPOCH_CURVES - {"loss/train_step", "trainer/lr"} | per_epoch:
        assert len(acc.Scalars(tag)) == 2, tag  # one point per epoch
    assert len(acc.Scalars("trainer/lr")) == len(acc.Scalars("loss/train_step")) == 12  # per step
    # TensorBoard sorts groups by name; without number prefixes they read in this order
    groups = sorted({t.split("/")[0] for t in acc.Tags()["scalars"]})
    assert groups == ["loss", "top1", "top5", "trainer"]
    assert hparams_metric_tags(acc) == per_epoch  # the curves' last values
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    summary = json.loads((tmp_path / "summary.json").read_text())
    shown = {k: v.number_value for k, v in session.hparams.items() if k.startswith("test/")}
    assert shown == ({f"test/{m}": pytest.approx(summary["test"][m]) for m in ("loss", "top1", "top5")}
                     if val else {})
    text = acc.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"| test | {summary['test']['top1']:.2f} |" in text


def test_custom_scalars_layout_orders_the_charts(tmp_path: Path) -> None:
    from tensorboard.plugins.custom_scalar import layout_pb2

    run_fit(tmp_path, SCHEDULES["cosine"], 1)
    acc = events(tmp_path / "tb")
    (event,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    titles = [chart.title for category in layout.category for chart in category.chart]
    assert titles[:3] == ["loss", "top-1 (%)", "top-5 (%)"] and "learning rate" in titles


def test_speed_in_tensorboard_equals_metrics_csv(tmp_path: Path) -> None:
    run_fit(tmp_path, SCHEDULES["cosine"], 2)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    acc = events(tmp_path / "tb")
    for name in ("images_per_s", "epoch_time_s"):
        logged = [e.value for e in acc.Scalars(f"trainer/{name}")]
        assert logged == pytest.approx([float(r[name]) for r in rows], rel=1e-5)


def test_run_label_names_the_model_and_what_the_sweep_varies(tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['model=se,eca', 'seed=0,1', 'data=synthetic', "
        "'optim.lr=range(1,3)', 'trainer.device=cpu']\n")
    sweep = SimpleNamespace(mode="RunMode.MULTIRUN", sweep=SimpleNamespace(dir=str(tmp_path)))
    job = ["model=eca", "seed=1", "data=synthetic", "optim.lr=2", "trainer.device=cpu"]
    assert run_label("eca", job, sweep) == "eca_seed=1_optim.lr=2"
    single = SimpleNamespace(mode="RunMode.RUN")
    assert run_label("defcon", ["experiment=smoke", "hydra.run.dir=x/y", "trainer.device=cpu"],
                     single) == "defcon_experiment=smoke"
    many = ["optim.lr=0.05", "trainer.epochs=100", "data.val_size=10000", "data=synthetic"]
    assert run_label("eca", many, single) == "eca_lr=0.05_epochs=100_val_size=10000_+1"
    assert run_label("se", ["data.root=/a b/c"], None) == "se"


def test_a_resumed_run_writes_into_its_existing_tb_run(tmp_path: Path) -> None:
    assert tb_dir(tmp_path, "eca_seed=1") == tmp_path / "tb" / "eca_seed=1"
    (tmp_path / "tb" / "eca_seed=1").mkdir(parents=True)
    assert tb_dir(tmp_path, "eca_seed=1_trainer.epochs=300") == tmp_path / "tb" / "eca_seed=1"
    (tmp_path / "old" / "tb").mkdir(parents=True)
    (tmp_path / "old" / "tb" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    assert tb_dir(tmp_path / "old", "eca") == tmp_path / "old" / "tb"  # written before names


def test_ema_and_dominant_tags_join_their_metric_group() -> None:
    from defcon_exp.engine.records import tb_tag

    assert tb_tag("val/ema_top1") == "top1/val_ema" and tb_tag("val/ema_loss") == "loss/val_ema"
    assert tb_tag("train/top1_dominant") == "top1/train_dominant"
    assert tb_tag("attention/stage1/weights") == "attention/stage1/weights"


def test_kernel_size_is_shown_only_for_attentions_with_a_1d_kernel() -> None:
    from defcon_exp.run.hparams import hparams

    for attention, shown in (("eca", "adaptive"), ("defcon", "adaptive"), ("se", "n/a"),
                             ("none", "n/a"), ("cbam", "n/a")):
        container = {"model": {"attention": attention, "kernel_size": "adaptive"}}
        assert hparams(container, attention)["model.kernel_size"] == shown, attention
