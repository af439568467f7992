"""Benchmark: train-step time of every model relative to the plain ResNet-50, in one run.

For each model: parameters, forward FLOPs per image (``torch.utils.flop_counter``; the
deformable op is a custom autograd function the counter does not see, a few kFLOPs), the
median train-step time (forward + backward + SGD step) over interleaved rounds and its
ratio to ResNet-50, inference images/s, and what the paper's run would take at these speeds:
200 epochs of CIFAR-100, each 50,000 training images (train steps) plus 10,000 test images
(inference), data loading not counted.

``--precision``, ``--channels-last`` and ``--compile`` apply to every model alike, as
``trainer.precision``, ``trainer.channels_last`` and ``trainer.compile`` do in training
(compilation happens in the warm-up step and is not timed).

    python scripts/bench_models.py                         # CPU, batch 64, 10 rounds
    python scripts/bench_models.py --device cuda --batch-size 128
    python scripts/bench_models.py --models resnet50 eca defcon --unfused
    python scripts/bench_models.py --device cuda --batch-size 128 --precision bf16 --channels-last --compile
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python scripts/bench_models.py
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 python scripts/bench_models.py

On a CPU the step time depends on the memory allocator: with glibc's malloc every fresh
feature-map-sized tensor is a new ``mmap`` whose pages fault in on first touch, which costs
more than the arithmetic done in it and varies from step to step; glibc told not to mmap
nor trim (the two variables above), or jemalloc, keep and reuse the memory (see
docs/benchmarks.md). The header names the allocator in use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from defcon_exp.engine.precision import PRECISIONS, autocast, grad_scaler
from defcon_exp.engine.speedups import COMPILE_MODES, compile_model, memory_format
from defcon_exp.models import ARCHS, MODEL_NAMES, create_model

PAPER_MODELS = ["resnet50", "se", "eca", "cbam", "defcon", "defcon_shuffle"]
#: the paper's CIFAR-100 run: 200 epochs of 50,000 training and 10,000 test images
PAPER_EPOCHS, TRAIN_IMAGES, TEST_IMAGES = 200, 50_000, 10_000


def paper_run_hours(train_images_per_s: float, test_images_per_s: float) -> float:
    """Hours for the paper's 200-epoch CIFAR-100 run at the given throughputs."""
    seconds_per_epoch = TRAIN_IMAGES / train_images_per_s + TEST_IMAGES / test_images_per_s
    return PAPER_EPOCHS * seconds_per_epoch / 3600


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(model: nn.Module, device: torch.device, size: int = 32) -> int:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size, device=device))
    return counter.get_total_flops()


def paired_ratio(times: list[float], baseline: list[float]) -> float:
    """Median over rounds of ``time / baseline time`` of the same round (run minutes apart at
    most, so slow drifts of a shared machine cancel)."""
    return statistics.median(t / b for t, b in zip(times, baseline, strict=True))


def allocator_name() -> str:
    """``jemalloc``/``tcmalloc`` when preloaded into this process, else ``glibc``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    name = next((name for name in ("jemalloc", "tcmalloc") if name in maps), "glibc")
    if name == "glibc" and os.environ.get("MALLOC_MMAP_MAX_") == "0":
        name += " (MALLOC_MMAP_MAX_=0: freed memory reused)"
    return name


def fresh_allocation_mib(step: Callable[[], object], device: torch.device) -> float:
    """MiB the step allocates in blocks of >= 1 MiB (feature-map-sized tensors), one profiled
    step. Deterministic, unlike time: on a CPU each fresh block of this size costs page faults
    on first touch, often more than the arithmetic done in it."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    usage = "self_device_memory_usage" if device.type == "cuda" else "self_cpu_memory_usage"
    sizes = (getattr(event, usage, 0) for event in prof.events())
    return sum(size for size in sizes if size >= 1 << 20) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=PAPER_MODELS, choices=MODEL_NAMES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32, help="square input side")
    parser.add_argument("--arch", default="cifar_resnet50", choices=list(ARCHS),
                        help="model.arch: e.g. resnet50_imagenet (with --image-size 224)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--unfused", action="store_true", help="also time fused_tail=False")
    parser.add_argument(
        "--precision", default="32", choices=PRECISIONS, help="as trainer.precision (default 32)"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="models and batches in torch.channels_last"
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=COMPILE_MODES,
        help="torch.compile every model (optionally a mode; default 'default')",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    layout = memory_format(args.channels_last)

    variants: dict[str, nn.Module] = {}
    for name in dict.fromkeys(["resnet50", *args.models]):
        variants[name] = create_model(name, num_classes=100, arch=args.arch, device=device)
        if args.unfused and name != "resnet50":
            variants[f"{name} (unfused)"] = create_model(
                name, num_classes=100, arch=args.arch, fused_tail=False, device=device
            )
    if args.channels_last:
        for model in variants.values():
            model.to(memory_format=torch.channels_last)
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for name, model in variants.items()
    }
    scalers = {name: grad_scaler(args.precision, device) for name in variants}
    forwards = {name: compile_model(model, args.compile) for name, model in variants.items()}
    size = args.image_size
    images = torch.randn(args.batch_size, 3, size, size, device=device).to(memory_format=layout)
    labels = torch.randint(0, 100, (args.batch_size,), device=device)

    def train_step(name: str) -> float:
        model, optimizer, scaler = forwards[name], optimizers[name], scalers[name]
        model.train()
        sync(device)
        start = time.perf_counter()
        with autocast(args.precision, device):
            loss = nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # a disabled scaler (32, bf16) passes loss through
        scaler.step(optimizer)
        scaler.update()
        sync(device)
        return time.perf_counter() - start

    def inference(name: str) -> float:
        model = forwards[name].eval()
        sync(device)
        start = time.perf_counter()
        with torch.no_grad(), autocast(args.precision, device):
            model(images)
        sync(device)
        return time.perf_counter() - start

    step_times: dict[str, list[float]] = {name: [] for name in variants}
    infer_times: dict[str, list[float]] = {name: [] for name in variants}
    for name in variants:  # warm-up
        train_step(name)
        inference(name)
    names = list(variants)
    for round_index in range(args.rounds):
        # rotate the order every round so no model always runs first (or after the same one)
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            step_times[name].append(train_step(name))
        for name in order:
            infer_times[name].append(inference(name))

    allocated = {name: fresh_allocation_mib(lambda n=name: train_step(n), device) for name in names}
    baseline = statistics.median(step_times["resnet50"])
    print(
        f"# train step (fwd+bwd+SGD), {args.arch}, batch {args.batch_size}, {size}x{size}, {device}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds; "
        f"precision {args.precision}, channels_last {args.channels_last}, "
        f"compile {args.compile or 'off'}; allocator {allocator_name()}"
    )
    print(
        f"# paper run: {PAPER_EPOCHS} epochs x ({TRAIN_IMAGES:,} train images at the step speed "
        f"+ {TEST_IMAGES:,} test images at the inference speed), data loading excluded"
    )
    print(
        "| model | params | fwd MFLOPs/img | step ms | step vs resnet50 | infer img/s "
        "| 200-epoch CIFAR-100 (h) | step allocs MiB | paired ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model in variants.items():
        step = statistics.median(step_times[name])
        infer = args.batch_size / statistics.median(infer_times[name])
        params = sum(p.numel() for p in model.parameters())
        flops = forward_flops(model, device, size) / 1e6
        hours = paper_run_hours(args.batch_size / step, infer)
        print(
            f"| {name} | {params:,} | {flops:,.1f} | {step * 1e3:.1f} | "
            f"{step / baseline:.3f}x | {infer:,.0f} | {hours:,.1f} | "
            f"{allocated[name]:,.0f} ({allocated[name] / allocated['resnet50']:.2f}x) | "
            f"{paired_ratio(step_times[name], step_times['resnet50']):.3f}x |"
        )


if __name__ == "__main__":
    main()
