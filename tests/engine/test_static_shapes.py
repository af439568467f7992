"""Static shapes under ``torch.compile`` (issue 18): evaluation pads its last batch and
scores only the real rows; training drops the last incomplete batch; a whole run (epochs,
evaluation, test, resume) compiles each mode's graph once and never recompiles."""

from __future__ import annotations

import pytest
import torch
from attention_net import BATCH, tiny_net_config
from omegaconf import OmegaConf
from torch import nn
from torch._dynamo.utils import counters

from defcon_exp.engine.loop import evaluate
from defcon_exp.run.train import _static_train_batches, train


class ShapeRecorder(nn.Module):
    """Linear classifier on the flattened image that records every batch shape it sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 4, 5)
        self.shapes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(x.shape[0])
        return self.fc(x.flatten(1))


def _batches():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(11, 3, 4, 4, generator=gen)
    labels = torch.randint(0, 5, (11,), generator=gen)
    return [(images[i : i + 4], labels[i : i + 4]) for i in range(0, 11, 4)]


def test_evaluate_pads_the_last_batch_and_scores_only_real_rows():
    model = ShapeRecorder()
    plain = evaluate(model, _batches(), torch.device("cpu"))
    assert model.shapes == [4, 4, 3]
    model.shapes.clear()
    padded = evaluate(model, _batches(), torch.device("cpu"), static_shapes=True)
    assert model.shapes == [4, 4, 4]
    assert padded["count"] == plain["count"] == 11
    for key in ("loss", "top1", "top5"):
        assert padded[key] == pytest.approx(plain[key], rel=1e-6), key


def test_training_drops_the_last_incomplete_batch_only_under_compile():
    data = OmegaConf.create({"drop_last": False, "batch_size": 128})
    assert _static_train_batches(data, None) is data
    static = _static_train_batches(data, "default")
    assert static.drop_last is True and data.drop_last is False  # a copy, not the run's config


@pytest.fixture(scope="module")
def inductor() -> None:
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.randn(4))
    except Exception as err:  # no C++ compiler, or inductor broken on this platform
        pytest.skip(f"torch.compile (inductor) does not work here: {type(err).__name__}: {err}")


@pytest.mark.slow
def test_a_compiled_run_never_recompiles(inductor, tmp_path):
    # 40 training images (2 batches of 16 + 8) and 20 test images (16 + 4): without static
    # shapes the 8 and the 4 would each be a new shape, i.e. a recompile
    sizes = ("data.train_size=40", "data.test_size=20", "trainer.compile=true")
    run = tmp_path / "run"
    torch._dynamo.reset()
    counters.clear()
    summary = train(tiny_net_config(run, "trainer.epochs=2", *sizes))
    assert summary["global_step"] == 4  # 2 full batches an epoch, the 8 dropped
    # the training graph and the evaluation graph (eval mode), once each, for 2 epochs
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])

    torch._dynamo.reset()  # a resumed run is a new process
    counters.clear()
    cfg = tiny_net_config(run, "trainer.epochs=3", *sizes)
    cfg.resume = str(run)
    assert train(cfg)["global_step"] == 6
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])
    assert BATCH == 16
