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
    python scripts/bench_launches.py --models resnet50 defcon --compile --batch 8

float32 runs on the ``meta`` device (shapes only, no arithmetic: seconds per model);
``--bf16`` and ``--compile`` need real tensors and run on the CPU, where a small ``--batch``
keeps them quick: the count does not depend on the batch size (the CUDA paths have no
size-dependent branches).

``--bf16`` runs under CPU autocast to bfloat16, whose op lists differ slightly from CUDA's.
``--compile`` counts what inductor generates for the CPU (fused C++ kernels + calls of
external kernels, one compiled forward+backward): an estimate of the compiled CUDA step,
whose Triton fusion differs in detail; it compiles every model (minutes each on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import Counter

import torch
from torch import nn

from defcon_exp.engine.launch_counter import LaunchCounter
from defcon_exp.models import MODEL_NAMES, create_model
from defcon_exp.ops import PYTHON_IMPLEMENTATIONS
from defcon_exp.ops.kernel_paths import simulate_cuda_paths

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
    with simulate_cuda_paths(), LaunchCounter(PYTHON_IMPLEMENTATIONS) as counter:
        train_step(model, images, labels, bf16)
    return counter


def count_compiled(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> int:
    """Kernels of one compiled train step: inductor's generated kernels (counted at compile
    time) plus the external kernels (convolutions, matmuls) its code calls."""
    from torch._inductor import metrics

    torch._dynamo.reset()
    metrics.reset()
    compiled = torch.compile(model)
    with simulate_cuda_paths():
        train_step(compiled, images, labels, bf16)
    generated = metrics.generated_kernel_count
    with simulate_cuda_paths(), LaunchCounter(PYTHON_IMPLEMENTATIONS) as counter:
        train_step(compiled, images, labels, bf16)
    return generated + counter.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=PAPER_MODELS, choices=MODEL_NAMES)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--bf16", action="store_true", help="CPU autocast to bfloat16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also count torch.compile")
    parser.add_argument("--top", type=int, default=0, help="list each model's N commonest ops")
    args = parser.parse_args()
    torch.manual_seed(0)
    layout = torch.channels_last if args.channels_last else torch.preserve_format
    # meta: shapes only (autocast and inductor need real CPU tensors)
    device = torch.device("cpu" if args.bf16 or args.compile else "meta")
    images = torch.randn(args.batch, 3, 32, 32, device=device).to(memory_format=layout)
    labels = torch.randint(0, 100, (args.batch,), device=device)

    rows: dict[str, tuple[LaunchCounter, int | None]] = {}
    for name in dict.fromkeys(["resnet50", *args.models]):
        model = create_model(name, num_classes=100, device=device)
        model = model.to(memory_format=layout).train()
        start = time.perf_counter()
        counter = count_eager(model, images, labels, args.bf16)
        compiled = count_compiled(model, images, labels, args.bf16) if args.compile else None
        rows[name] = (counter, compiled)
        print(f"# {name}: counted in {time.perf_counter() - start:.0f} s", flush=True)

    base, base_compiled = rows["resnet50"][0].total, rows["resnet50"][1]
    print(
        f"# kernels per train step (forward + backward), batch {args.batch}, 32x32, CUDA code "
        f"paths counted on CPU, {'bf16 autocast' if args.bf16 else 'float32'}, "
        f"channels_last {args.channels_last}; counted on {device}; torch {torch.__version__}"
    )
    print(f"| model | eager launches | extra vs resnet50 | ratio | extra ms at {LAUNCH_US:g} us "
          "| host syncs | compiled kernels | compiled ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (counter, compiled) in rows.items():
        extra = counter.total - base
        if compiled is None or base_compiled is None:
            compiled_cells = "- | -"
        else:
            compiled_cells = f"{compiled:,} | {compiled / base_compiled:.2f}x"
        print(
            f"| {name} | {counter.total:,} | {extra:+,} | {counter.total / base:.2f}x | "
            f"{extra * LAUNCH_US / 1e3:.2f} | {counter.host_syncs} | {compiled_cells} |"
        )
    if args.top:
        for name, (counter, _) in rows.items():
            print(f"\n{name}: " + ", ".join(f"{op} {n}" for op, n in counter.by_op.most_common(args.top)))
        base_ops = rows["resnet50"][0].by_op
        for name, (counter, _) in rows.items():
            if name != "resnet50":
                diff = Counter(counter.by_op)
                diff.subtract(base_ops)
                print(f"\n{name} - resnet50: " + ", ".join(
                    f"{op} {n:+d}" for op, n in diff.most_common(args.top) if n))


if __name__ == "__main__":
    main()
