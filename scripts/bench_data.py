"""Loader throughput vs ResNet-50 training throughput on this machine.

Measures training images/s of each loader path (``dataloader`` with each requested worker
count, and ``tensor``) and of a CIFAR ResNet-50 train step (forward + backward + SGD step,
32 x 32 inputs) on the same device and cores, and prints loader / model ratios. The goal
is ratio >= 5: the loader never makes the model wait.

    python scripts/bench_data.py                       # synthetic CIFAR-sized set, CPU
    python scripts/bench_data.py --data cifar100 --root ~/data --device cuda

Each number is the median of ``--rounds`` rounds of ``--duration`` seconds (after warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from defcon_exp.data import DataConfig, build_data
from defcon_exp.models import cifar_resnet50


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(
    step: Callable[[], int], duration: float, rounds: int, device: torch.device
) -> list[float]:
    """Images/s of ``step`` (returns images processed) for each round, after one warm-up call."""
    step()
    rates = []
    for _ in range(rounds):
        _sync(device)
        start, images = time.perf_counter(), 0
        while True:
            images += step()
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= duration:
                break
        rates.append(images / elapsed)
    return rates


def _loader_step(loader) -> Callable[[], int]:
    """One batch per call, moving on to the next epoch when one ends (as training does)."""
    state = {"epoch": 0, "iterator": iter(loader)}

    def step() -> int:
        try:
            images, _ = next(state["iterator"])
        except StopIteration:
            state["epoch"] += 1
            loader.set_epoch(state["epoch"])
            state["iterator"] = iter(loader)
            images, _ = next(state["iterator"])
        return images.shape[0]

    return step


def _model_step(batch_size: int, num_classes: int, attention: str, device: torch.device):
    model = cifar_resnet50(num_classes=num_classes, attention=attention, device=device)
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, num_classes, (batch_size,), device=device)

    def step() -> int:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return batch_size

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="synthetic", choices=["synthetic", "cifar100", "cifar10"])
    parser.add_argument("--root", default="data", help="CIFAR folder (data.root)")
    parser.add_argument(
        "--train-size", type=int, default=50_000, help="synthetic images (CIFAR-sized)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="loader batch size")
    parser.add_argument("--model-batch-size", type=int, default=128)
    parser.add_argument(
        "--attention", default="none", help="model attention (none = fastest model)"
    )
    parser.add_argument(
        "--workers", default="0,2", help="DataLoader worker counts, comma-separated"
    )
    parser.add_argument("--cutout", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0 = default)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true", help="loaders only")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    base = DataConfig(
        name=args.data,
        root=args.root,
        download=False,
        train_size=args.train_size,
        test_size=100,
        batch_size=args.batch_size,
        cutout=args.cutout,
    )
    print(
        f"device={device} torch threads={torch.get_num_threads()} data={args.data} "
        f"batch={args.batch_size} cutout={args.cutout} "
        f"({args.rounds} rounds x {args.duration:g} s, median)"
    )
    results: list[tuple[str, float]] = []
    variants = [("dataloader", int(w)) for w in args.workers.split(",") if w.strip()]
    variants.append(("tensor", 0))
    num_classes = 10
    for loader_name, workers in variants:
        config = DataConfig(**{**base.__dict__, "loader": loader_name, "num_workers": workers})
        bundle = build_data(config, seed=0, device=device)
        num_classes = bundle.num_classes
        label = f"{loader_name} (workers={workers})" if loader_name == "dataloader" else loader_name
        rates = _rate(_loader_step(bundle.train), args.duration, args.rounds, device)
        results.append((label, statistics.median(rates)))
        print(f"  measured {label:<26} {statistics.median(rates):>10,.0f} images/s", flush=True)
        del bundle

    model_rate = None
    if not args.skip_model:
        step = _model_step(args.model_batch_size, num_classes, args.attention, device)
        model_rate = statistics.median(_rate(step, args.duration, args.rounds, device))
        print(f"  measured ResNet-50 train step        {model_rate:>10,.1f} images/s", flush=True)

    print()
    print(f"| path | images/s | ratio to ResNet-50 ({args.attention}) training |")
    print("|---|---:|---:|")
    for label, rate in results:
        ratio = f"{rate / model_rate:,.1f}x" if model_rate else "-"
        print(f"| {label} | {rate:,.0f} | {ratio} |")
    if model_rate:
        print(
            f"| ResNet-50 train step (batch {args.model_batch_size}, fwd+bwd+SGD) | "
            f"{model_rate:,.1f} | 1.0x |"
        )
        worst = min(rate for _, rate in results) / model_rate
        verdict = "met" if worst >= 5 else "NOT met"
        print(f"\ngoal loader >= 5x model: {verdict} (slowest path {worst:,.1f}x)")


if __name__ == "__main__":
    main()
