"""Training-time attention histograms: written per stage, equal to defcon-inspect's numbers on
the same probe, and invisible to the training run (RNG, BatchNorm, resume)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from engine_fixtures import TinyLoader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from defcon_exp.analysis.histograms import AttentionHistograms
from defcon_exp.analysis.inspect import attention_statistics
from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.fit import Loaders, fit
from defcon_exp.engine.fit_settings import RunIdentity, TrainerConfig
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers
from defcon_exp.models.resnet import CifarResNet

EPOCHS = 3
PROBE = 12


def images_and_labels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    return torch.randn(n, 3, 8, 8, generator=gen) + labels.view(-1, 1, 1, 1) * 0.3, labels


def tiny_attention_net(attention: str = "defcon") -> CifarResNet:
    """One bottleneck per stage; dropout before the classifier so training uses the global RNG."""
    model = CifarResNet((1, 1, 1, 1), num_classes=4, attention=attention, kernel_size=3)
    model.fc.register_forward_pre_hook(lambda m, args: (F.dropout(args[0], 0.3, m.training),))
    return model


def run(run_dir: Path, every: int, epochs: int = EPOCHS, resume: bool = False, attention: str = "defcon"):
    torch.manual_seed(0)
    model = tiny_attention_net(attention)
    train_set = images_and_labels(24, seed=0)
    val_set = images_and_labels(16, seed=1)
    # a real DataLoader draws a base seed from the global RNG whenever it is iterated
    val = DataLoader(TensorDataset(*val_set), batch_size=8)
    loaders = Loaders(TinyLoader(*train_set, 8, seed=3), val, val, num_classes=4)
    optimizer = build_optimizer(model, "sgd", lr=0.05, weight_decay=1e-4, momentum=0.9, nesterov=False)
    schedule, plateau = build_schedulers(optimizer=optimizer, epochs=EPOCHS, steps_per_epoch=3, name="cosine")
    settings = TrainerConfig(epochs=epochs, progress=False, log_every_n_steps=1)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    histograms = AttentionHistograms.create(model, val, torch.device("cpu"), every, PROBE)
    summary = fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), run_dir, settings,
                  resume_state=state, identity=RunIdentity(model_name=attention),
                  epoch_hooks=[histograms] if histograms else [])
    return model, summary, val_set[0][:PROBE]


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_histograms_per_stage_match_inspect(tmp_path: Path) -> None:
    _, _, probe = run(tmp_path, every=2)
    acc = events(tmp_path)
    tags = set(acc.Tags()["histograms"])
    for stage in range(1, 5):
        for name in ("weights", "offset", "channel_distance"):
            assert f"attention/stage{stage}/{name}" in tags
    # every 2 epochs of 3 -> only after epoch 2 (global step 6)
    assert [e.step for e in acc.Histograms("attention/stage4/offset")] == [6]
    weights = acc.Histograms("attention/stage1/weights")[0].histogram_value
    assert weights.num == PROBE * 256  # one weight per image and channel of the stage's block

    # the last logged epoch's scalars equal defcon-inspect on the same weights and probe: rerun
    # the two-epoch state (training continued afterwards, so rebuild it from a 2-epoch run)
    model2, _, _ = run(tmp_path / "two", every=2, epochs=2)
    stats = attention_statistics(model2, probe)["stages"]
    for stage in ("1", "4"):
        logged = acc.Scalars(f"attention/stage{stage}/offset_abs_mean")[0].value
        assert logged == pytest.approx(stats[stage]["offset_abs_mean"], rel=1e-5, abs=1e-7)
        logged = acc.Scalars(f"attention/stage{stage}/entropy_normalised")[0].value
        assert logged == pytest.approx(stats[stage]["entropy_normalised"], rel=1e-5)
    distance = acc.Histograms("attention/stage2/channel_distance")[0].histogram_value
    assert distance.num == PROBE * 3 * 512 and distance.min >= 0


def test_histograms_do_not_change_the_run(tmp_path: Path) -> None:
    on, on_summary, _ = run(tmp_path / "on", every=1)
    off, off_summary, _ = run(tmp_path / "off", every=0)
    for (name, a), b in zip(on.state_dict().items(), off.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert on_summary["test"] == off_summary["test"]
    assert not events(tmp_path / "off").Tags()["histograms"]
    rows_on = list(csv.DictReader((tmp_path / "on" / "metrics.csv").open()))
    rows_off = list(csv.DictReader((tmp_path / "off" / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows_on] == [r["train_loss"] for r in rows_off]


def test_resume_with_histograms_is_exact(tmp_path: Path) -> None:
    straight, _, _ = run(tmp_path / "straight", every=1)
    run(tmp_path / "resumed", every=1, epochs=1)
    resumed, _, _ = run(tmp_path / "resumed", every=1, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    steps = [e.step for e in events(tmp_path / "resumed").Histograms("attention/stage3/weights")]
    assert steps == [3, 6, 9]


def test_disabled_or_without_attention_is_a_no_op() -> None:
    val = TinyLoader(*images_and_labels(8, seed=1), 4, shuffle=False)
    cpu = torch.device("cpu")
    assert AttentionHistograms.create(tiny_attention_net("none"), val, cpu, 1, 4) is None
    assert AttentionHistograms.create(tiny_attention_net(), val, cpu, 0, 4) is None
    probe = AttentionHistograms.create(tiny_attention_net("se"), val, cpu, 1, 6)
    assert probe is not None and probe.probe.shape == (6, 3, 8, 8)
