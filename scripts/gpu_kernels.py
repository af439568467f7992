"""ATen vs Triton kernels on a GPU, eager and compiled: the measurements that settle the
default of ``model.kernels`` (issue 24). Run by ``scripts/gpu_check.sh``; CUDA only.

    python scripts/gpu_kernels.py [--batch 128] [--rounds 20]

Two tables, then the decision:

1. **The op**: one attention block's pooled-vector path and tail (DEFCON, DEFCON-shuffle,
   ECA: ``scale_add_relu(x, attention.channel_weights(x), identity)``, forward + backward)
   at the four stages' shapes, with ``kernels=aten`` and ``kernels=triton``: eager in
   float32, and eager and ``torch.compile``d as ``trainer=gpu`` runs it (bf16 autocast,
   channels_last).
2. **The step**: a whole ResNet-50 train step (forward, backward, SGD) of ResNet-50, ECA
   and DEFCON with each setting, in float32 eager and with the GPU preset (bf16,
   channels_last, compile).
3. **The decision** (:func:`decide`): per model and setting, Triton's step time over ATen's;
   Triton becomes the recommended default only if it is faster by more than
   :data:`MARGIN` for every attention model in both settings, else ATen stays.

Times are medians of interleaved rounds (CUDA events around each call, after warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from defcon_exp.attention import create_attention
from defcon_exp.engine.precision import autocast
from defcon_exp.models import create_model
from defcon_exp.ops import scale_add_relu

#: Triton must win by more than this share of the step to become the default
MARGIN = 0.02
#: channels, 1D kernel size (the paper's per stage) and feature-map side at 32x32 input
STAGES = [(256, 3, 32), (512, 5, 16), (1024, 5, 8), (2048, 7, 4)]
MODELS = ("resnet50", "eca", "defcon")
OP_ATTENTIONS = ("defcon", "defcon_shuffle", "eca")
SETTINGS = {"fp32 eager": ("32", False, False), "trainer=gpu": ("bf16", True, True)}


def decide(step_ms: Mapping[tuple[str, str, str], float]) -> tuple[list[str], str]:
    """``{(model, setting, kernels): ms}`` -> (markdown rows, recommended ``model.kernels``).

    A row per attention model and setting: ATen's and Triton's step times and their ratio;
    ``"triton"`` is recommended only when every ratio is below ``1 - MARGIN`` (and at least
    one was measured), else ``"aten"``."""
    rows, ratios = [], []
    keys = sorted({(model, setting) for model, setting, _ in step_ms if model != "resnet50"})
    for model, setting in keys:
        aten, triton = step_ms.get((model, setting, "aten")), step_ms.get((model, setting, "triton"))
        if aten is None or triton is None:
            rows.append(f"| {model} | {setting} | {aten or '-'} | {triton or '-'} | not measured | - |")
            ratios.append(float("inf"))
            continue
        ratio = triton / aten
        ratios.append(ratio)
        faster = "triton" if ratio < 1 - MARGIN else "aten" if ratio > 1 + MARGIN else "tie"
        rows.append(f"| {model} | {setting} | {aten:.2f} | {triton:.2f} | {ratio:.3f}x | {faster} |")
    recommended = "triton" if ratios and max(ratios) < 1 - MARGIN else "aten"
    return rows, recommended


def _median_ms(step: Callable[[], object], rounds: int) -> float:
    for _ in range(3):
        step()
    if not torch.cuda.is_available():  # the CPU smoke test of this script's code paths
        start = time.perf_counter()
        step()
        return (time.perf_counter() - start) * 1e3
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def op_table(batch: int, rounds: int, device: torch.device) -> list[str]:
    """Table 1: one block's attention path + tail, forward and backward, per stage."""
    rows = []
    for name in OP_ATTENTIONS:
        for channels, k, side in STAGES:
            for setting, (precision, channels_last, compiles) in SETTINGS.items():
                times = {}
                for kernels in ("aten", "triton"):
                    for compiled in (False, True) if compiles else (False,):
                        step = _op_step(name, channels, k, side, batch, precision, channels_last,
                                        kernels, compiled, device)
                        times[kernels, compiled] = _median_ms(step, rounds)
                cells = " | ".join(
                    f"{times[key]:.3f}" if key in times else "-"
                    for key in [("aten", False), ("aten", True), ("triton", False), ("triton", True)]
                )
                best = min(times, key=times.get)
                rows.append(f"| {name} | {channels} | {k} | {setting} | {cells} | "
                            f"{best[0]}{' compiled' if best[1] else ''} |")
    return rows


def _op_step(name, channels, k, side, batch, precision, channels_last, kernels, compiled, device):
    attention = create_attention(name, channels, kernel_size=k, device=device)
    attention.kernels = kernels
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, channels, side, side, device=device).to(memory_format=layout)
    x.requires_grad_()
    identity = torch.randn_like(x)

    def block(x: torch.Tensor) -> torch.Tensor:
        return scale_add_relu(x, attention.channel_weights(x), identity, kernels=kernels)

    forward = torch.compile(block, fullgraph=True, dynamic=False) if compiled else block

    def step() -> None:
        with autocast(precision, device):
            out = forward(x)
        out.float().sum().backward()

    return step


def step_times(batch: int, rounds: int, device: torch.device) -> dict[tuple[str, str, str], float]:
    """Table 2: whole train steps, ``{(model, setting, kernels): ms}``."""
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 100, (batch,), device=device)
    results = {}
    for setting, (precision, channels_last, compiled) in SETTINGS.items():
        for model_name in MODELS:
            for kernels in ("aten",) if model_name == "resnet50" else ("aten", "triton"):
                step = _train_step(
                    model_name, kernels, precision, channels_last, compiled, images, labels
                )
                results[model_name, setting, kernels] = _median_ms(step, rounds)
    return results


def _train_step(model_name, kernels, precision, channels_last, compiled, images, labels):
    """One train step (forward, backward, SGD) of a fresh model, as a closure."""
    device = images.device
    layout = torch.channels_last if channels_last else torch.contiguous_format
    images = images.to(memory_format=layout)
    model = create_model(model_name, num_classes=100, device=device, kernels=kernels)
    model = model.to(memory_format=layout).train()
    forward = torch.compile(model, dynamic=False) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with autocast(precision, device):
            loss = nn.functional.cross_entropy(forward(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_kernels: no CUDA device visible; run it on a machine with a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.manual_seed(0)
    print(f"# the op: one block's attention path + tail, fwd+bwd, batch {args.batch}, ms "
          f"(median of {args.rounds}); {torch.cuda.get_device_name(0)}")
    print("| attention | C | k | setting | aten eager | aten compiled | triton eager "
          "| triton compiled | fastest |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for row in op_table(args.batch, args.rounds, device):
        print(row, flush=True)
    times = step_times(args.batch, args.rounds, device)
    print(f"\n# the train step, batch {args.batch}, ms (median of {args.rounds}); "
          "trainer=gpu = bf16 autocast + channels_last + torch.compile")
    print("| model | setting | kernels | step ms |")
    print("|---|---|---|---:|")
    for (model, setting, kernels), ms in times.items():
        print(f"| {model} | {setting} | {kernels} | {ms:.2f} |")
    rows, recommended = decide(times)
    print(f"\n# decision: Triton becomes the default only if faster by > {MARGIN:.0%} everywhere")
    print("| model | setting | aten ms | triton ms | triton / aten | faster |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        print(row)
    print(f"# recommended default: model.kernels={recommended}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
