"""Bodies of the 2-process gloo checks in ``test_collectives.py`` (a module of its own so
``torch.multiprocessing.spawn`` can import them in the child processes)."""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ddp_net import ddp_tiny_model
from torch import nn

from defcon_exp.engine import distributed

EVAL_DATA = {"name": "synthetic", "train_size": 16, "test_size": 21, "batch_size": 8,
             "eval_batch_size": 4, "loader": "tensor", "augment": False}


def run(rank: int, world: int, port: int, tmp: str) -> None:
    """Join a gloo group of ``world`` processes and run every check (raising on failure)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        check_sharded_evaluation(rank, world)
        check_sync_batchnorm(rank, world)
        check_resnet50_step_in_float64(rank, world)
        check_error_agreement(rank)
        check_signal_agreement(rank)
        check_nan_agreement(rank, Path(tmp))
        check_global_batch_rule(Path(tmp))
    finally:
        dist.destroy_process_group()


def check_sharded_evaluation(rank: int, world: int) -> None:
    """21 test images over 2 ranks (11 + 10, in 6 and 5 batches of 2): the summed metrics are
    those of one process evaluating all 21, also through DDP (no collective in eval)."""
    from defcon_exp.data import build_data
    from defcon_exp.engine.loop import evaluate

    torch.manual_seed(0)
    model = ddp_tiny_model(10)
    whole = evaluate(model, build_data(EVAL_DATA, seed=0).test, torch.device("cpu"))
    shard = build_data(EVAL_DATA, seed=0, rank=rank, world_size=world).test
    assert len(shard) == (6 if rank == 0 else 5)
    for forward in (model, distributed.wrap_ddp(model, torch.device("cpu"))):
        got = evaluate(forward, shard, torch.device("cpu"), all_reduce=distributed.all_reduce)
        assert got["count"] == whole["count"] == 21
        assert (got["top1"], got["top5"]) == (whole["top1"], whole["top5"])
        assert got["loss"] == pytest.approx(whole["loss"], rel=1e-6)  # float32 batch sums


def check_sync_batchnorm(rank: int, world: int) -> None:
    """CPU SyncBatchNorm on each rank's half of a batch == BatchNorm on the whole batch:
    outputs, input and parameter gradients, running statistics."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 4, 4, generator=gen) * 2 + 1
    weights = torch.randn(8, 3, 4, 4, generator=gen)
    plain = nn.Sequential(nn.BatchNorm2d(3))
    with torch.no_grad():
        plain[0].weight.uniform_(0.5, 1.5, generator=gen)
        plain[0].bias.uniform_(-1, 1, generator=gen)
    synced = distributed.convert_sync_batchnorm(copy.deepcopy(plain), torch.device("cpu"))
    assert isinstance(synced[0], distributed.CPUSyncBatchNorm)
    assert synced.state_dict().keys() == plain.state_dict().keys()
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    whole_in = images.clone().requires_grad_()
    (plain(whole_in) * weights).sum().backward()
    local_in = images[part].clone().requires_grad_()
    out = synced(local_in)
    (out * weights[part]).sum().backward()
    reference = nn.functional.batch_norm(images, None, None, plain[0].weight, plain[0].bias, True)
    torch.testing.assert_close(out, reference[part], rtol=1e-5, atol=1e-5)
    plain.eval()
    synced.eval()
    with torch.no_grad():  # same running stats -> same eval output
        torch.testing.assert_close(synced(images), plain(images), rtol=1e-5, atol=1e-6)
    plain.train()
    torch.testing.assert_close(local_in.grad, whole_in.grad[part], rtol=1e-4, atol=1e-6)
    for name in ("weight", "bias"):
        grad = distributed.all_reduce(getattr(synced[0], name).grad)
        torch.testing.assert_close(grad, getattr(plain[0], name).grad, rtol=1e-5, atol=1e-6)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(synced[0], name), getattr(plain[0], name))


def check_resnet50_step_in_float64(rank: int, world: int) -> None:
    """ResNet-50 (53 synchronised BatchNorms) on 4 images per rank computes the gradient of
    one process on all 8, to 1e-10 in float64. (In float32 the two differ by ~1e-2 relative
    at init, as much as float32 differs from float64 in either: BatchNorm's backward over 8
    images is ill-conditioned, and training at a too-high lr amplifies it; see
    docs/reliability.md.)"""
    from defcon_exp.models import cifar_resnet50

    gen = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 16, 16, generator=gen, dtype=torch.float64)
    labels = torch.arange(8) % 10
    torch.manual_seed(0)
    single = cifar_resnet50(num_classes=10).double()
    synced = distributed.convert_sync_batchnorm(copy.deepcopy(single), torch.device("cpu"))
    nn.functional.cross_entropy(single(images), labels).backward()
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    ddp = distributed.wrap_ddp(synced, torch.device("cpu"))
    nn.functional.cross_entropy(ddp(images[part]), labels[part]).backward()  # DDP averages
    want = dict(single.named_parameters())
    for name, param in synced.named_parameters():
        torch.testing.assert_close(param.grad, want[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def check_error_agreement(rank: int) -> None:
    """An error on one rank is raised on every rank, never a wait for the failed one."""

    def fail_on_rank_1() -> int:
        if rank == 1:
            raise FileNotFoundError("checkpoint not found: /nowhere/last.pt")
        return 7

    expected = FileNotFoundError if rank == 1 else distributed.DistributedError
    with pytest.raises(expected, match=r"/nowhere/last\.pt"):
        distributed.run_everywhere(fail_on_rank_1)
    with pytest.raises(expected, match=r"/nowhere/last\.pt"):
        distributed.main_first(fail_on_rank_1)  # rank 0 succeeds, rank 1 fails after it
    decided = distributed.share_from_main(lambda: f"decided by rank {distributed.rank()}")
    assert decided == "decided by rank 0"

    def fail_on_rank_0() -> None:
        raise ValueError("run_dir='x' is invalid")

    expected = ValueError if rank == 0 else distributed.DistributedError
    with pytest.raises(expected, match="run_dir='x' is invalid"):
        distributed.share_from_main(fail_on_rank_0)
    if rank == 1:
        with pytest.raises(AssertionError, match="differ between ranks"):
            distributed.check_same(rank, "batches")
    else:
        with pytest.raises(AssertionError, match=r"batches differ between ranks: \[0, 1\]"):
            distributed.check_same(rank, "batches")


def check_signal_agreement(rank: int) -> None:
    """A signal seen by rank 1 alone stops both ranks at the same call."""
    seen: list[int | None] = [None, None, signal.SIGTERM if rank == 1 else None]
    agree = distributed.SignalAgreement(lambda: seen.pop(0))
    assert [agree(), agree(), agree()] == [None, None, signal.SIGTERM]
    assert agree.last == signal.SIGTERM
    # at_step agrees every 3rd step only: rank 1's signal at step 2 stops both after step 3
    step = [0]
    agree = distributed.SignalAgreement(
        lambda: signal.SIGTERM if rank == 1 and step[0] >= 2 else None, every_n_steps=3
    )
    agreed = []
    for step[0] in (1, 2, 3):
        agreed.append(agree.at_step())
    assert agreed == [None, None, signal.SIGTERM]
    assert agree.last == signal.SIGTERM


def check_nan_agreement(rank: int, tmp: Path) -> None:
    """A NaN loss on rank 1 only (global step 3, checked at step 4): both ranks raise at the
    same check, naming step 3, and nothing is saved after it."""
    from engine_fixtures import NaNAfter, TinyLoader, tiny_data, tiny_model

    from defcon_exp.engine.fit import Loaders, fit
    from defcon_exp.engine.fit_settings import TrainerConfig
    from defcon_exp.engine.loop import NonFiniteLossError
    from defcon_exp.engine.optim import build_optimizer
    from defcon_exp.engine.schedulers import build_schedulers

    torch.manual_seed(0)
    model = tiny_model()
    if rank == 1:
        model = NaNAfter(model, after=3)
    optimizer = build_optimizer(model, "sgd", lr=0.1)
    schedule, plateau = build_schedulers("constant", optimizer=optimizer, epochs=2, steps_per_epoch=6)
    val = TinyLoader(*tiny_data(16, seed=1), 8, shuffle=False)
    loaders = Loaders(TinyLoader(*tiny_data(48), 8, seed=3), val, val, num_classes=4)
    settings = TrainerConfig(epochs=2, log_every_n_steps=2, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"global step 3 \(epoch 1, detected by batch 4\)"):
        fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), tmp / "nan", settings,
            handle_signals=False)
    assert not (tmp / "nan" / "checkpoints" / "last.pt").exists()


def check_global_batch_rule(tmp: Path) -> None:
    """train() refuses a global batch the processes cannot share, on every rank, before
    anything is written."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from cli_helpers import TINY
    from hydra import compose, initialize_config_module

    from defcon_exp.config import ConfigError
    from defcon_exp.run.train import train

    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "data.batch_size=7", f"run_dir={tmp / 'odd'}"])
    with pytest.raises(ConfigError, match=r"data.batch_size=7 is invalid: .* divisible by the 2 processes .* data.batch_size=6"):
        train(cfg)
    assert not (tmp / "odd").exists()
