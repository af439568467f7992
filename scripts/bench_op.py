"""Benchmark: deform_conv1d against torchvision's deform_conv2d (H = 1), forward + backward.

Runs both side by side in one process, interleaved, for several rounds, and prints the
median time of each, their ratio and the memory each keeps for its backward. Shapes are
DEFCON's: the pooled vector of B images, C channels, is a 1-channel signal of length C.

    python scripts/bench_op.py                       # the issue's table, CPU, float32
    python scripts/bench_op.py --device cuda         # the same on a GPU
    python scripts/bench_op.py --threads 1 --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torchvision.ops import deform_conv2d

from defcon_exp.ops import deform_conv1d

DEFAULT_SHAPES = [(128, 2048, 7), (128, 256, 3), (128, 256, 5), (128, 512, 3), (128, 512, 5),
                  (128, 1024, 3), (128, 1024, 5)]  # fmt: skip


def torchvision_1d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, padding: int):
    """The same op through deform_conv2d with H = 1: y-offsets zero, x-offsets ours."""
    batch, taps, length = offset.shape
    offset_2d = torch.stack((torch.zeros_like(offset), offset), 2).view(batch, 2 * taps, 1, length)
    return deform_conv2d(x[:, :, None], offset_2d, weight[:, :, None], padding=(0, padding))[
        :, :, 0
    ]


def ours(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, padding: int):
    return deform_conv1d(x, offset, weight, padding=padding)


def saved_bytes(fn: Callable, *args) -> int:
    """Bytes of the tensors autograd keeps from forward to backward (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(storages.values())


def bench_shape(
    batch: int,
    channels: int,
    k: int,
    candidates: dict[str, Callable],
    device: torch.device,
    dtype: torch.dtype,
    rounds: int,
    generator: torch.Generator,
) -> tuple[dict[str, float], list[float]]:
    """Median ms of forward+backward per candidate, and MiB saved for backward (tv, ours)."""
    x = torch.randn(batch, 1, channels, generator=generator).to(device, dtype).requires_grad_()
    offset = (3 * torch.randn(batch, k, channels, generator=generator)).to(device, dtype)
    offset.requires_grad_()
    weight = torch.randn(1, 1, k, generator=generator).to(device, dtype).requires_grad_()
    grad = torch.randn(batch, 1, channels, generator=generator).to(device, dtype)

    def step(fn: Callable) -> float:
        sync(device)
        start = time.perf_counter()
        fn(x, offset, weight, k // 2).backward(grad)
        sync(device)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up (and compilation)
        step(fn)
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(step(fn))
    medians = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    memory = [saved_bytes(fn, x, offset, weight, k // 2) / 2**20 for fn in (torchvision_1d, ours)]
    return medians, memory


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    candidates: dict[str, Callable] = {"torchvision": torchvision_1d, "ours": ours}
    if args.compile:
        candidates["ours+compile"] = torch.compile(ours, dynamic=False)

    print(f"# deform_conv1d vs torchvision deform_conv2d(H=1), forward+backward, {args.dtype}, "
          f"{device}, {torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")  # fmt: skip
    header = "| B | C | k | " + " | ".join(f"{n} ms" for n in candidates)
    header += " | speed-up | saved MiB torchvision | saved MiB ours |"
    print(header)
    print("|" + "---:|" * (header.count("|") - 1))
    generator = torch.Generator().manual_seed(0)
    for batch, channels, k in DEFAULT_SHAPES:
        medians, memory = bench_shape(
            batch, channels, k, candidates, device, dtype, args.rounds, generator
        )
        best_ours = min(v for n, v in medians.items() if n != "torchvision")
        cells = " | ".join(f"{medians[n]:.2f}" for n in candidates)
        print(f"| {batch} | {channels} | {k} | {cells} | {medians['torchvision'] / best_ours:.1f}x "
              f"| {memory[0]:.1f} | {memory[1]:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
