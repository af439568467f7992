"""Image files decoded and transformed per item in DataLoader workers (the image-folder path).

Decoding: ``torchvision.io.decode_image`` (libjpeg-turbo for JPEG, also PNG/WebP/GIF),
always to 3-channel RGB, on the raw bytes read with ``torchvision.io.read_file``; chosen by
measurement over PIL (``scripts/bench_input_pipeline.py``, docs/benchmarks.md).

Transforms (torchvision ``transforms.v2``): training ``RandomResizedCrop(train_crop)``
(scale 0.08-1, ratio 3/4-4/3) + ``RandomHorizontalFlip``, then the regularisation kit's
policies (``auto_augment`` on uint8, ``random_erasing`` after normalising); evaluation
``Resize(eval_resize)`` (shorter side) + ``CenterCrop(eval_crop)``. Each training image's
randomness is drawn inside ``seeded(<its plan position's seed>)``, the seeds coming from the
epoch plan (:func:`~defcon_exp.data.policies.policy_seeds`): the images are a pure function
of ``(seed, epoch)`` whatever the worker count, and a resumed run sees exactly the same.

Corrupt images: a file that cannot be read or decoded is replaced by the next readable file
of the set (deterministic, so the replacement is the same on resume), and reported to the
main process with the batch; the loader logs each such file once with its path and stops
the run with one line once more than ``max_bad_images`` distinct files failed (the default
0 stops at the first: nothing is silently skipped or substituted).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from defcon_exp.rates import first_line

from .fileset import FileSet, ImageFolderError
from .loaders import WorkerLoader
from .policies import ImagePolicies, seeded

__all__ = ["CorruptImageError", "FolderImages", "FolderLoader", "decode_file", "folder_transform"]

log = logging.getLogger("defcon_exp.data")

_MAX_REPLACEMENT_TRIES = 16


class CorruptImageError(ImageFolderError):
    """Unreadable or corrupt image files beyond ``data.max_bad_images``; one line."""


def decode_file(path: str) -> Tensor:
    """``uint8 [3, H, W]`` RGB of the image file at ``path`` (grey, CMYK and alpha converted)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    return decode_image(read_file(path), mode=ImageReadMode.RGB)


def folder_transform(train: bool, augment: bool, train_crop: int, eval_resize: int, eval_crop: int):
    """The geometric part: ``uint8 [3, H, W] -> uint8 [3, S, S]`` (v2 transforms).

    Training without ``augment`` uses the evaluation resize and centre crop at ``train_crop``
    (scaled as ``eval_resize / eval_crop``)."""
    from torchvision.transforms import v2

    if train and augment:
        return v2.Compose(
            [v2.RandomResizedCrop(train_crop, antialias=True), v2.RandomHorizontalFlip()]
        )
    crop = train_crop if train else eval_crop
    resize = round(crop * eval_resize / eval_crop)
    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(crop)])


class FolderImages(Dataset):
    """Items ``(float32 [3, S, S] normalised, label, bad)`` of a :class:`FileSet`.

    Indexed by a plan key (``(index, ..., policy_seed)`` from
    :class:`~defcon_exp.data.loaders.PlanSampler`) or a plain ``int``. ``bad`` is the index
    of a file that failed to decode and was replaced (-1 when none did).
    """

    def __init__(
        self,
        files: FileSet,
        mean: Sequence[float],
        std: Sequence[float],
        geometry: Callable[[Tensor], Tensor],
        policies: ImagePolicies | None = None,
    ) -> None:
        self.files = files
        self.geometry = geometry
        self.policies = policies or ImagePolicies()  # none: each step leaves the image as it is
        from torchvision.transforms import v2

        self.normalise = v2.Normalize(list(mean), list(std))
        self.to_float = functools.partial(v2.functional.to_dtype, dtype=torch.float32, scale=True)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> tuple[Tensor, int, int]:
        """``(image, label, bad)``: file ``index`` decoded, or its replacement."""
        for step in range(_MAX_REPLACEMENT_TRIES):
            candidate = (index + step) % len(self.files)
            try:
                image = decode_file(self.files.path(candidate))
            except (RuntimeError, OSError):
                continue
            return image, int(self.files.labels[candidate]), index if step else -1
        raise CorruptImageError(
            f"{self.files.path(index)} and the {_MAX_REPLACEMENT_TRIES - 1} files after it "
            f"cannot be decoded: check data.root={self.files.root}"
        )

    def __getitem__(self, key: int | tuple) -> tuple[Tensor, int, int]:
        index, seed = (int(key[0]), int(key[-1])) if isinstance(key, tuple) else (int(key), 0)
        image, label, bad = self._load(index)
        with seeded(seed):
            chw = self.policies.before_normalise(self.geometry(image))
            out = self.policies.after_normalise(self.normalise(self.to_float(chw)))
        return out, label, bad


def _failure(path: str) -> str:
    """Why ``path`` does not decode (one line)."""
    try:
        decode_file(path)
    except (RuntimeError, OSError) as error:
        text = first_line(error)
        return re.sub(r"^.*\.cpp:\d+, ", "", text)  # torchvision's C++ source location
    return "it failed to decode in a worker"


class FolderLoader(WorkerLoader):
    """:class:`WorkerLoader` over :class:`FolderImages`: yields ``(float32 [B, 3, S, S],
    int64 [B])`` and enforces ``max_bad_images`` (counted per process, from its start)."""

    def __init__(
        self, files: FileSet, dataset: FolderImages, *args, max_bad_images: int = 0, **kwargs
    ):
        super().__init__(files, *args, dataset=dataset, **kwargs)
        self.files = files
        self.max_bad_images = max_bad_images
        self.bad_files: dict[int, str] = {}

    def _note_bad(self, bad: Tensor) -> None:
        for index in sorted(set(bad[bad >= 0].tolist())):
            if index in self.bad_files:
                continue
            path = self.files.path(index)
            self.bad_files[index] = path
            reason = _failure(path)
            if len(self.bad_files) > self.max_bad_images:
                raise CorruptImageError(
                    f"{path} cannot be decoded ({reason}): replace or delete it, or allow "
                    f"data.max_bad_images={self.max_bad_images + 1} (now {self.max_bad_images}; "
                    f"each is then replaced by the next readable image and logged)"
                )
            log.warning(
                "corrupt image %d of at most %d (data.max_bad_images), replaced by the next "
                "readable one: %s (%s)",
                len(self.bad_files),
                self.max_bad_images,
                path,
                reason,
            )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for images, labels, bad in self.loader:
            if bool((bad >= 0).any()):
                self._note_bad(bad)
            yield images, labels
