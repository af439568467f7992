"""Pre-emption in fit(): SIGTERM/SIGINT finish the step, save a mid-epoch checkpoint, raise
TrainingInterrupted; resuming from it (or from a periodic mid-epoch checkpoint) is exact."""

from __future__ import annotations

import csv
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from engine_fixtures import NaNAfter, TinyLoader, tiny_data, tiny_model

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.fit import Loaders, TrainingInterrupted, fit
from defcon_exp.engine.fit_settings import RunIdentity, TrainerConfig
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers

EPOCHS = 3  # 6 batches per epoch


class SignallingLoader(TinyLoader):
    """Sends ``signum`` to this process while yielding batch ``batch`` of epoch ``epoch``."""

    def __init__(self, *args, signum: int, epoch: int, batch: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.signum, self.at_epoch, self.at_batch = signum, epoch, batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i, item in enumerate(super().__iter__()):
            if self.epoch == self.at_epoch and i == self.at_batch:
                os.kill(os.getpid(), self.signum)
            yield item


def run(run_dir: Path, *, resume: bool = False, signum: int | None = None, at: tuple[int, int] = (1, 2),
        every: int = 0, seed: int = 0, nan_after: int | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = tiny_model()
    if nan_after is not None:
        model = NaNAfter(model, nan_after)
    images, labels = tiny_data(48)
    val_images, val_labels = tiny_data(16, seed=1)
    if signum is None:
        train = TinyLoader(images, labels, 8, seed=3)
    else:
        train = SignallingLoader(images, labels, 8, seed=3, signum=signum, epoch=at[0], batch=at[1])
    loaders = Loaders(train, TinyLoader(val_images, val_labels, 8, shuffle=False),
                      TinyLoader(val_images, val_labels, 8, shuffle=False), num_classes=4)
    optimizer = build_optimizer(model, "sgd", lr=0.2, weight_decay=1e-3, momentum=0.9)
    schedule, plateau = build_schedulers("cosine", optimizer=optimizer, epochs=EPOCHS,
                                         steps_per_epoch=len(train), warmup_epochs=0.5)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    settings = TrainerConfig(epochs=EPOCHS, log_every_n_steps=1, progress=False,
                             checkpoint_every_n_steps=every)
    fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), run_dir, settings, state,
        identity=RunIdentity(model_name="tiny"))
    return model


def rows(run_dir: Path) -> list[dict[str, str]]:
    drop = {"epoch_time_s", "images_per_s"}
    return [{k: v for k, v in r.items() if k not in drop}
            for r in csv.DictReader((run_dir / "metrics.csv").open())]


def assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    run_dir = tmp_path_factory.mktemp("straight")
    return run(run_dir), run_dir


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_mid_epoch_checkpoint_and_resume_is_exact(
        tmp_path: Path, straight: tuple[torch.nn.Module, Path], signum: int) -> None:
    handler_before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted, match=r"global step 9 \(epoch 2, batch 3/6\).*resume=") as info:
        run(tmp_path, signum=signum, at=(1, 2))  # delivered while batch 3 of epoch 2 is drawn
    assert info.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is handler_before  # handlers restored
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["global_step"], ckpt["position"]["batches_done"]) == (1, 9, 3)
    resumed = run(tmp_path, resume=True, seed=123)  # another init: everything comes from the checkpoint
    model, straight_dir = straight
    assert_same(model, resumed)
    assert rows(tmp_path) == rows(straight_dir)


def test_signal_during_last_batch_stops_after_the_epoch(tmp_path: Path,
                                                         straight: tuple[torch.nn.Module, Path]) -> None:
    with pytest.raises(TrainingInterrupted, match="after epoch 1"):
        run(tmp_path, signum=signal.SIGTERM, at=(0, 5))
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["position"] is None
    assert_same(straight[0], run(tmp_path, resume=True))


def test_periodic_mid_epoch_checkpoint_resumes_exactly(tmp_path: Path,
                                                        straight: tuple[torch.nn.Module, Path]) -> None:
    run(tmp_path, every=4)
    # simulate a hard kill right after the step-16 checkpoint: rerun up to it, then resume
    partial = tmp_path / "partial"
    with pytest.raises(TrainingInterrupted):
        run(partial, signum=signal.SIGTERM, at=(2, 3), every=4)  # last.pt: step 16 (epoch 3, batch 4)
    ckpt = load_checkpoint(partial / "checkpoints" / "last.pt")
    assert ckpt["global_step"] == 16 and ckpt["position"]["batches_done"] == 4
    assert_same(straight[0], run(partial, resume=True, every=4))
    assert rows(partial) == rows(straight[1]) == rows(tmp_path)


def test_nan_with_periodic_checkpoints_keeps_last_good_one(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"global step 9 "):
        run(tmp_path, every=2, nan_after=9)  # the 10th training step (global step 9) is NaN
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["global_step"] == 8  # the step-10 checkpoint is never written
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
