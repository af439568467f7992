"""TensorBoard reads at a glance: loss / accuracy / lr groups first, no duplicate or
single-point hparam tags, throughput logged, and run names that say what is compared."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from test_fit_resume import SCHEDULES, run_fit

from defcon_exp.engine.records import tb_dir
from defcon_exp.run.run_label import run_label

EPOCH_CURVES = {"1_loss/train", "1_loss/train_step", "2_top1/train", "3_top5/train", "4_lr/lr",
                "5_speed/images_per_s", "5_speed/epoch_time_s"}


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
    per_epoch = {f"1_loss/{split}", f"2_top1/{split}", f"3_top5/{split}"}
    final_test = {"1_loss/test", "2_top1/test", "3_top5/test"}
    assert set(acc.Tags()["scalars"]) == EPOCH_CURVES | per_epoch | final_test
    for tag in EPOCH_CURVES - {"1_loss/train_step", "4_lr/lr"} | per_epoch:
        assert len(acc.Scalars(tag)) == 2, tag  # one point per epoch
    assert len(acc.Scalars("4_lr/lr")) == len(acc.Scalars("1_loss/train_step")) == 12  # per step
    if val:
        assert all(len(acc.Scalars(t)) == 1 for t in final_test)  # the test set, once
    # the Time Series page sorts groups by name: loss, top1, top5, lr, speed, then the rest
    groups = sorted({t.split("/")[0] for t in acc.Tags()["scalars"]} | {"attention"})
    assert groups == ["1_loss", "2_top1", "3_top5", "4_lr", "5_speed", "attention"]
    assert hparams_metric_tags(acc) == final_test | (per_epoch if val else set())


def test_speed_in_tensorboard_equals_metrics_csv(tmp_path: Path) -> None:
    run_fit(tmp_path, SCHEDULES["cosine"], 2)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    acc = events(tmp_path / "tb")
    for name in ("images_per_s", "epoch_time_s"):
        logged = [e.value for e in acc.Scalars(f"5_speed/{name}")]
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

    assert tb_tag("val/ema_top1") == "2_top1/val_ema" and tb_tag("val/ema_loss") == "1_loss/val_ema"
    assert tb_tag("train/top1_dominant") == "2_top1/train_dominant"
    assert tb_tag("attention/stage1/weights") == "attention/stage1/weights"
