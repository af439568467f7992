"""Why a float32 2-process run drifts from the single-process run (issue 12): the gradient of
one ResNet-50 step on 8 images, by 1 process and by 2 gloo processes (4 images each,
synchronised BatchNorm, DDP), each in float32 and float64, compared with the 1-process
float64 gradient. Usage: ``python scripts/ddp_precision_check.py [--size 32]`` (CPU, ~1 min).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from defcon_exp.engine import distributed
from defcon_exp.models import cifar_resnet50

DTYPES = (torch.float32, torch.float64)


def batch(size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, size, size, generator=gen).to(dtype), torch.arange(8) % 10


def gradient(model: nn.Module, forward: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    nn.functional.cross_entropy(forward(images), labels).backward()
    return {k: p.grad.detach().double().clone() for k, p in model.named_parameters()}


def worker(rank: int, port: int, size: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    result = {}
    for dtype in DTYPES:
        torch.manual_seed(0)
        model = distributed.convert_sync_batchnorm(
            cifar_resnet50(num_classes=10).to(dtype), torch.device("cpu")
        )
        images, labels = batch(size, dtype)
        part = slice(rank * 4, rank * 4 + 4)
        ddp = distributed.wrap_ddp(model, torch.device("cpu"))
        result[str(dtype)] = gradient(model, ddp, images[part], labels[part])
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def relative(got: dict, want: dict) -> str:
    error = sum((got[k] - want[k]).norm() ** 2 for k in want) ** 0.5
    norm = sum(want[k].norm() ** 2 for k in want) ** 0.5
    worst = max(((got[k] - want[k]).abs().max() / want[k].abs().max()).item() for k in want)
    return f"relative error {error / norm:.1e} (worst tensor {worst:.1e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image side (CIFAR: 32)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    single = {}
    for dtype in DTYPES:
        torch.manual_seed(0)
        model = cifar_resnet50(num_classes=10).to(dtype)
        single[str(dtype)] = gradient(model, model, *batch(args.size, dtype))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "grads.pt")
        mp.spawn(worker, args=(port, args.size, out), nprocs=2, join=True)
        two = torch.load(out)
    reference = single["torch.float64"]
    print(f"ResNet-50, 8 images {args.size}x{args.size}, vs 1 process float64:")
    print("  1 process  float32:", relative(single["torch.float32"], reference))
    print("  2 processes float32:", relative(two["torch.float32"], reference))
    print("  2 processes float64:", relative(two["torch.float64"], reference))


if __name__ == "__main__":
    main()
