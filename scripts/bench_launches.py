"""Benchmark proxy for GPU speed: kernels launched per train step, per model, counted on CPU.

Each model runs one train step (forward + backward of the cross-entropy loss; the optimizer
step is the same for all and left out) under :class:`~defcon_exp.engine.launch_counter.
LaunchCounter`, a dispatch mode that counts every ATen op that launches a kernel (views,
metadata and allocations excluded), with every op taking its CUDA implementation
(:func:`~defcon_exp.ops.kernel_paths.simulate_cuda_paths`). Custom ops count as the ATen
ops of their implementation, not as one. The table gives the launches, the extra launches
over ResNet-50 and the ratio to it; host syncs (``.item()`` and the like) must be 0.

At ~5 us of host time per launch (a recent GPU, eager PyTorch) the extra launches are a
floor on the step time an attention module adds where the GPU outruns the host.

    python scripts/bench_launches.py                          # batch 128, float32, eager
    python scripts/bench_launches.py --bf16 --channels-last --batch 8   # as trainer=gpu

Each model is counted with ``model.kernels=aten`` and ``=triton`` (``--kernels``): on the
Triton path each Triton launch counts as one kernel (the counter listens to
:func:`defcon_exp.ops.triton_launch.launch`) and the ATen ops around the kernels as before.

float32 runs on the ``meta`` device (shapes only, no arithmetic: seconds per model);
``--bf16`` needs real tensors and runs on the CPU, where a small ``--batch`` keeps it quick:
the count does not depend on the batch size (the CUDA paths have no size-dependent
branches).

``--bf16`` runs under CPU autocast to bfloat16, whose op lists differ slightly from CUDA's;
its Triton rows need ``TRITON_INTERPRET=1`` (real CPU tensors: the kernels run in Triton's
interpreter, slowly; ``--batch 2`` keeps it to minutes).
``torch.compile`` is not counted: without a GPU inductor generates C++ kernels, not the
Triton kernels a CUDA step launches, and a dispatch mode does not see inside them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter

import torch
from torch import nn

from defcon_exp.engine.launch_counter import LaunchCounter
from defcon_exp.models import MODEL_NAMES, create_model
from defcon_exp.ops import PYTHON_IMPLEMENTATIONS
from defcon_exp.ops.kernel_paths import KERNELS, simulate_cuda_paths
from defcon_exp.ops.triton_launch import interpreting
from defcon_exp.ops.triton_ops import TRITON_IMPLEMENTATIONS

PAPER_MODELS = ["resnet50", "se", "eca", "cbam", "defcon", "defcon_shuffle"]
#: host time per kernel launch assumed for the time column (eager PyTorch, recent GPU)
LAUNCH_US = 5.0


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> None:
    """Forward + backward of one step (grads set to None first, as training does)."""
    model.zero_grad(set_to_none=True)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    with autocast:
        logits = model(images)
    nn.functional.cross_entropy(logits.float(), labels).backward()


def count_eager(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> LaunchCounter:
    """Launches of one eager train step on the CUDA code paths."""
    train_step(model, images, labels, bf16)  # lazy initialisation outside the count
    implementations = {**PYTHON_IMPLEMENTATIONS, **TRITON_IMPLEMENTATIONS}
    with simulate_cuda_paths(), LaunchCounter(implementations) as counter:
        train_step(model, images, labels, bf16)
    return counter


def _row(name: str, kernels: str) -> str:
    return f"{name}@{kernels}"


def print_table(rows: dict[str, LaunchCounter], args: argparse.Namespace, device: torch.device) -> None:
    """The markdown table: launches per model and kernels setting, extra over ResNet-50."""
    print(
        f"# kernels per train step (forward + backward), {args.arch}, batch {args.batch}, "
        f"{args.image_size}x{args.image_size}, CUDA code "
        f"paths counted on CPU, {'bf16 autocast' if args.bf16 else 'float32'}, "
        f"channels_last {args.channels_last}; counted on {device}; torch {torch.__version__}; "
        "a Triton launch counts as one kernel"
    )
    print(f"| model | kernels | eager launches | extra vs resnet50 | ratio | extra ms at {LAUNCH_US:g} us "
          "| host syncs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kernels in args.kernels:
        base = rows[_row("resnet50", kernels)].total
        for name in dict.fromkeys(["resnet50", *args.models]):
            counter = rows[_row(name, kernels)]
            extra = counter.total - base
            print(
                f"| {name} | {kernels} | {counter.total:,} | {extra:+,} | {counter.total / base:.2f}x | "
                f"{extra * LAUNCH_US / 1e3:.2f} | {counter.host_syncs} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=PAPER_MODELS, choices=MODEL_NAMES)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32, help="square input side")
    parser.add_argument("--arch", default="cifar_resnet50", help="model.arch, e.g. resnet50_imagenet")
    parser.add_argument("--bf16", action="store_true", help="CPU autocast to bfloat16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--top", type=int, default=0, help="list each model's N commonest ops")
    parser.add_argument(
        "--kernels", nargs="+", default=["aten", "triton"], choices=KERNELS,
        help="model.kernels settings to count (triton: the fused Triton kernels' CUDA path)",
    )
    args = parser.parse_args()
    if args.bf16 and set(args.kernels) - {"aten"} and not interpreting():
        sys.exit(
            "bench_launches: --bf16 counts on real CPU tensors, where the Triton kernels run only "
            "in Triton's interpreter: set TRITON_INTERPRET=1 in the environment, or --kernels aten"
        )
    torch.manual_seed(0)
    layout = torch.channels_last if args.channels_last else torch.preserve_format
    # meta: shapes only (autocast needs real CPU tensors)
    device = torch.device("cpu" if args.bf16 else "meta")
    size = args.image_size
    images = torch.randn(args.batch, 3, size, size, device=device).to(memory_format=layout)
    labels = torch.randint(0, 100, (args.batch,), device=device)

    rows: dict[str, LaunchCounter] = {}
    for kernels in args.kernels:
        for name in dict.fromkeys(["resnet50", *args.models]):
            model = create_model(name, num_classes=100, arch=args.arch, device=device, kernels=kernels)
            model = model.to(memory_format=layout).train()
            start = time.perf_counter()
            rows[_row(name, kernels)] = count_eager(model, images, labels, args.bf16)
            print(f"# {name}, kernels={kernels}: counted in {time.perf_counter() - start:.0f} s", flush=True)

    print_table(rows, args, device)
    if args.top:
        for name, counter in rows.items():
            print(f"\n{name}: " + ", ".join(f"{op} {n}" for op, n in counter.by_op.most_common(args.top)))
        for name, counter in rows.items():
            base_ops = rows[_row("resnet50", name.split("@")[1])].by_op
            if not name.startswith("resnet50@"):
                diff = Counter(counter.by_op)
                diff.subtract(base_ops)
                print(f"\n{name} - resnet50: " + ", ".join(
                    f"{op} {n:+d}" for op, n in diff.most_common(args.top) if n))


if __name__ == "__main__":
    main()
