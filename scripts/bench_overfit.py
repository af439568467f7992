"""Does the regularisation kit close the train/validation gap? Plain vs ``strong``, several
seeds, on a synthetic setting built to overfit (issue 14). Not a unit test.

Setting: the synthetic set (in memory) with 100 classes (shape x colour x texture
combinations that share attributes) and only ``--train-size`` = 400 training images (4 a
class), 30 epochs, and a SMALL bottleneck ResNet (:func:`small_resnet`: this project's
``Bottleneck`` blocks, widths 8/16/32 x 4 after a stride-2 stem, one block a stage, drop
path as in the real model) so a CPU finishes in minutes; ResNet-50 would need a GPU. Both arms share the
optimiser and schedule of ``experiment=strong`` (SGD 0.1 nesterov, wd 5e-4, cosine, 1
warm-up epoch); ``plain`` turns every regulariser off, ``strong`` keeps the preset's (Mixup
0.2 / CutMix 1.0, label smoothing 0.1, TrivialAugmentWide, drop path 0.05, weight EMA) with
the EMA decay scaled to the short run (``--ema-decay``; 0.9998 suits 78k steps, not 300).

Train top-1 is measured like validation top-1: the final selected weights (EMA for strong)
on the clean, unaugmented training images — not the running top-1 under mixing.

    python scripts/bench_overfit.py                       # 3 seeds, ~12 min on a busy 2-core CPU
    python scripts/bench_overfit.py --seeds 0 1 --epochs 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from torch import nn

from defcon_exp.attention import create_attention
from defcon_exp.data import build_data
from defcon_exp.engine.loop import evaluate
from defcon_exp.models.resnet import Bottleneck, drop_path_rates
from defcon_exp.run.checkpoint_tools import load_stored_run, use_weights
from defcon_exp.run.train import train
from defcon_exp.safety import TRUSTED_MODELS_ENV

BUILDER = "bench_overfit.small_resnet"


def small_resnet(
    num_classes: int = 10,
    attention: str = "none",
    kernel_size: object = 3,
    attention_kwargs: dict | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    stem: str = "cifar",
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """Stem (stride 2) 16 -> 3 bottleneck stages (widths 8/16/32, x4 out, at 16/8/4 px) ->
    pool -> linear; drop path linear in depth as ``cifar_resnet50``.
    ``Tensor[B, 3, 32, 32] -> Tensor[B, num_classes]``."""
    factory = {"device": device, "dtype": dtype}
    rates = drop_path_rates(drop_path_rate, 3)
    layers: list[nn.Module] = [
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False, **factory),
        nn.BatchNorm2d(16, **factory),
        nn.ReLU(inplace=True),
    ]
    in_channels = 16
    for index, width in enumerate((8, 16, 32)):
        attention_module = create_attention(attention, width * 4, **(attention_kwargs or {}))
        layers.append(
            Bottleneck(in_channels, width, 1 if index == 0 else 2, attention_module,
                       drop_path_rate=rates[index], **factory)
        )
        in_channels = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes, **factory)]
    return nn.Sequential(*layers)


def overrides(args: argparse.Namespace, arm: str, seed: int, run_dir: Path) -> list[str]:
    common = [
        "experiment=strong", "data=synthetic", f"data.num_classes={args.num_classes}",
        f"data.train_size={args.train_size}",
        "data.val_size=0", f"data.test_size={args.test_size}", f"data.batch_size={args.batch_size}",
        "data.eval_batch_size=256", "data.num_workers=0", f"trainer.epochs={args.epochs}",
        "trainer.device=cpu", "trainer.progress=false", "trainer.log_every_n_steps=1000",
        "trainer.histograms_every_n_epochs=0", "model=resnet50", f"model._target_={BUILDER}",
        f"seed={seed}", f"run_dir={run_dir}", f"trainer.ema.decay={args.ema_decay}",
        f"trainer.num_threads={args.threads}",
    ]
    if arm == "strong":
        return common
    return [*common, "trainer.label_smoothing=0", "trainer.mix.mixup_alpha=0",
            "trainer.mix.cutmix_alpha=0", "trainer.ema.enabled=false", "trainer.ema.select=raw",
            "data.auto_augment=none", "model.drop_path_rate=0", "data.loader=tensor"]


def clean_train_top1(run_dir: Path) -> float:
    """Top-1 of the run's selected final weights on its unaugmented training images."""
    run = load_stored_run(run_dir / "checkpoints" / "last.pt", [], "bench_overfit")
    use_weights(run, None)
    data_cfg = {**run.cfg.data, "augment": False, "cutout": 0, "auto_augment": "none",
                "random_erasing": 0.0, "loader": "tensor"}
    clean = build_data(data_cfg, seed=0, device="cpu").train  # every training image, once
    return evaluate(run.model, clean, torch.device("cpu"))["top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=400)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ema-decay", type=float, default=0.98)
    parser.add_argument("--threads", type=int, default=1)  # 2 oversubscribe a shared box
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ[TRUSTED_MODELS_ENV] = BUILDER
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "strong": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for seed in args.seeds:
            for arm in results:
                run_dir = Path(tmp) / f"{arm}_{seed}"
                summary = train(compose("config", overrides=overrides(args, arm, seed, run_dir)))
                train_top1, val_top1 = clean_train_top1(run_dir), summary["test"]["top1"]
                results[arm].append((train_top1, val_top1))
                print(f"seed {seed} {arm:6s}: train top-1 {train_top1:6.2f}  val top-1 {val_top1:6.2f}"
                      f"  gap {train_top1 - val_top1:6.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{'arm':8s} {'train top-1':>14s} {'val top-1':>14s} {'gap':>14s}   (mean ± sd over {len(args.seeds)} seeds)")
    for arm, pairs in results.items():
        cols = [[p[0] for p in pairs], [p[1] for p in pairs], [p[0] - p[1] for p in pairs]]
        cells = [f"{statistics.mean(c):6.2f} ± {statistics.stdev(c) if len(c) > 1 else 0.0:5.2f}" for c in cols]
        print(f"{arm:8s} {cells[0]:>14s} {cells[1]:>14s} {cells[2]:>14s}")


if __name__ == "__main__":
    main()
