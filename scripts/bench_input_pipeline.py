"""Benchmark: the image-folder input pipeline at 224x224 on this machine, in one run.

1. Decoders, one process, one thread: ``torchvision.io.decode_jpeg`` and ``decode_image``
   (libjpeg-turbo), PIL (``Image.open(...).convert("RGB")``) and, when installed,
   ``torchcodec``'s image decoder: decoded images/s per core.
2. The whole training transform of ``data=imagefolder`` per image (read + decode +
   RandomResizedCrop 224 + flip + normalise, :class:`~defcon_exp.data.folder_images.
   FolderImages`), one process: images/s per core.
3. The loader as a run builds it (``build_data``, persistent workers) for each worker count:
   images/s of whole batches, the first batch (worker start) excluded.

Then cores per GPU = (a GPU's ResNet-50 training images/s) / (images/s per core of step 2).
The JPEGs are written by the script at ImageNet's typical size (500x375, quality 90, smooth
content plus noise: about the ~110 kB of an average ImageNet training JPEG).

    nice python scripts/bench_input_pipeline.py                   # 96 images, workers 0 1 2
    nice python scripts/bench_input_pipeline.py --workers 0 1 2 4 --images 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, encode_jpeg, read_file

from defcon_exp.data import build_data
from defcon_exp.data.fileset import scan_image_folder
from defcon_exp.data.folder_images import FolderImages, folder_transform
from defcon_exp.data.imagefolder import IMAGENET_STATS

#: NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/README.md, "Training
#: performance: NVIDIA DGX A100 (8x A100 40GB)": ResNet-50 mixed precision 9,488.39 img/s on
#: 8 GPUs (pytorch-20.06 container, DALI) = 1,186 img/s per A100
GPU_IMAGES_PER_S = 9488.39 / 8


def write_jpegs(root: Path, count: int, classes: int = 4) -> None:
    """``count`` JPEGs of 500x375 in ``root/{train,val}/class_<c>/``."""
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        coarse = torch.rand(1, 3, 12, 16, generator=generator) * 255
        image = torch.nn.functional.interpolate(coarse, size=(375, 500), mode="bicubic")[0]
        image += torch.randn(3, 375, 500, generator=generator) * 18
        for split in ("train", "val"):
            folder = root / split / f"class_{index % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            data = encode_jpeg(image.clamp(0, 255).to(torch.uint8), quality=90)
            (folder / f"{index}.jpg").write_bytes(data.numpy().tobytes())


def per_second(work: Callable[[str], object], paths: list[str], rounds: int = 3) -> float:
    """Median over ``rounds`` of items/s of ``work`` over ``paths`` (after one warm-up)."""
    work(paths[0])
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            work(path)
        rates.append(len(paths) / (time.perf_counter() - start))
    return statistics.median(rates)


def decoders() -> dict[str, Callable[[str], object]]:
    """Name -> ``path -> decoded uint8 RGB image``."""
    found: dict[str, Callable[[str], object]] = {
        "torchvision.io.decode_jpeg": lambda p: decode_jpeg(read_file(p), mode=ImageReadMode.RGB),
        "torchvision.io.decode_image": lambda p: decode_image(read_file(p), mode=ImageReadMode.RGB),
    }
    try:
        import numpy as np
        from PIL import Image

        found["PIL Image.open().convert('RGB')"] = lambda p: np.asarray(Image.open(p).convert("RGB"))
    except ImportError:
        pass
    try:
        from torchcodec.decoders import decode_image as codec_image  # torchvision 0.29's successor
        from torchcodec.decoders import decode_jpeg as codec_jpeg

        found["torchcodec.decoders.decode_jpeg"] = lambda p: codec_jpeg(p, mode="RGB")
        found["torchcodec.decoders.decode_image"] = lambda p: codec_image(p, mode="RGB")
    except ImportError:
        pass
    return found


def loader_rate(root: Path, workers: int, batch: int, batches: int) -> float:
    """Training images/s of the ``build_data`` loader with ``workers`` workers."""
    cfg = {"name": "imagefolder", "root": str(root), "download": False, "batch_size": batch,
           "num_workers": workers, "pin_memory": False}
    loader = build_data(cfg, seed=0).train
    loader.set_epoch(0)
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch
    start, images = time.perf_counter(), 0
    for _, (_, labels) in zip(range(batches), iterator, strict=False):
        images += len(labels)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--gpu-images-per-s", type=float, default=GPU_IMAGES_PER_S)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per measurement (DataLoader workers run 1 thread too)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        train, _ = scan_image_folder(root)
        paths = [train.path(i) for i in range(len(train))]
        kilobytes = statistics.mean(os.path.getsize(p) for p in paths) / 1024
        print(f"# {len(paths)} JPEGs of 500x375 (mean {kilobytes:.0f} kB); {os.cpu_count()} cores; "
              f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
        print("| decoder (1 process, 1 thread) | images/s per core |\n|---|---|")
        for name, decode in decoders().items():
            print(f"| {name} | {per_second(decode, paths):.0f} |")
        dataset = FolderImages(train, *IMAGENET_STATS, folder_transform(True, True, 224, 256, 224))
        per_core = per_second(lambda i: dataset[(int(i), 0, 0, 0, 0, 0, int(i))], list(range(len(train))))
        print(f"\nfull training transform (read + decode_image + RandomResizedCrop 224 + flip + "
              f"normalise), 1 process: {per_core:.0f} images/s per core")
        print("\n| DataLoader workers | training images/s | batches of |\n|---|---|---|")
        batches = max(1, len(paths) // args.batch - 1)
        for workers in args.workers:
            print(f"| {workers} | {loader_rate(root, workers, args.batch, batches):.0f} | {args.batch} |")
        cores = args.gpu_images_per_s / per_core
        print(f"\nResNet-50 at {args.gpu_images_per_s:,.0f} training images/s per GPU needs "
              f"{cores:.1f} such cores per GPU for decoding and augmentation alone.")


if __name__ == "__main__":
    main()
