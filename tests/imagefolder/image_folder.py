"""A tiny ImageFolder of real JPEG files (``torchvision.io.encode_jpeg``), written by tests.

Class ``c`` is a learnable pattern: a bright colour channel ``c % 3`` and stripes horizontal
or vertical by ``c // 3``, on noise; sizes vary a little so resizing and cropping are real.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.io import encode_jpeg, write_file

HERE = Path(__file__).resolve().parent
#: folders of the test helpers (this one, the tiny nets of the reliability and distributed tests)
FOLDERS = [HERE, HERE.parent / "reliability", HERE.parent / "distributed", HERE.parent / "cli"]
#: environment of subprocess runs: the helpers importable, one thread per process
ENV = {"PYTHONPATH": os.pathsep.join([*map(str, FOLDERS), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}


def class_image(label: int, generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    """``uint8 [3, height, width]`` of class ``label``."""
    image = torch.rand(3, height, width, generator=generator) * 70
    image[label % 3] += 120
    stripes = (torch.arange(height if (label // 3) % 2 == 0 else width) // 3) % 2 == 0
    if (label // 3) % 2 == 0:
        image[:, stripes, :] += 60
    else:
        image[:, :, stripes] += 60
    return image.clamp(0, 255).to(torch.uint8)


def make_image_folder(
    root: Path, classes: int = 3, train_per_class: int = 8, val_per_class: int = 4, size: int = 40, seed: int = 0
) -> Path:
    """Write ``root/train/class_<c>/<i>.jpg`` and ``root/val/...``; returns ``root``."""
    generator = torch.Generator().manual_seed(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                height = size + int(torch.randint(0, 9, (1,), generator=generator))
                width = size + int(torch.randint(0, 9, (1,), generator=generator))
                image = class_image(label, generator, height, width)
                write_file(str(folder / f"{index}.jpg"), encode_jpeg(image, quality=90))
    return root
