"""Data sets by name: a :class:`DatasetSpec` per set, registered by its own file.

Importing this registry imports every module of ``defcon_exp.data``, so adding a data set is
its spec (in its file) plus ``conf/data/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from defcon_exp.data.config import FOLDER_DEFAULTS, DataConfig, check_key
from defcon_exp.data.imageset import ImageSet
from defcon_exp.plugins import import_submodules

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "check_set_keys",
    "get_dataset",
    "register_dataset",
]

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class DatasetSpec:
    """One data set.

    Attributes:
        name: ``data.name``.
        load: ``(data config) -> (train, test)`` image sets (``uint8 [N, S, S, 3]``), or
            file sets when ``files``.
        num_classes: the set's class count; ``None`` = chosen by ``data.num_classes`` within
            ``class_range``.
        stats: per-channel ``(mean, std)`` of pixels in [0, 1]; ``None`` = measured on the
            training images.
        image_size: height = width ``S`` of the images.
        class_range: allowed ``data.num_classes`` when ``num_classes`` is None.
        default_classes: the class count when ``data.num_classes`` is null.
        synthetic: generated (no files, no download; ``train_size``/``test_size`` apply).
        keys: the :class:`~defcon_exp.data.config.DataConfig` keys that only some data sets
            read and this one does (``root``/``download`` for files, ``train_size``/
            ``test_size`` for generated images); a key another set reads and this one does
            not must stay at its default (:func:`check_set_keys`).
        make_loader: for sets of image files: ``load`` returns
            :class:`~defcon_exp.data.fileset.FileSet` s and this builds each loader,
            ``(cfg, files, train, batch_size, seed, mean, std, **common) -> Loader``; the
            image-folder keys (:data:`~defcon_exp.data.config.FOLDER_DEFAULTS`) apply, the
            CIFAR crop/Cutout and the tensor loader do not. ``None``: in-memory images.
    """

    name: str
    load: Callable[[Any], tuple[ImageSet, ImageSet]]
    num_classes: int | None
    stats: Stats | None = None
    image_size: int = 32
    class_range: tuple[int, int] = (2, 2)
    default_classes: int | None = None
    synthetic: bool = False
    keys: tuple[str, ...] = ()
    make_loader: Callable[..., Any] | None = None

    @property
    def files(self) -> bool:
        """Image files decoded per item (``make_loader`` builds the loaders)."""
        return self.make_loader is not None

    def eval_size(self, data_cfg: Any) -> int:
        """Side of the images a run of this set is evaluated on (``data.eval_crop`` for image
        folders, ``image_size`` otherwise); ``data_cfg``: a mapping or config node."""
        if not self.files:
            return self.image_size
        crop = data_cfg.get("eval_crop") if hasattr(data_cfg, "get") else None
        return int(crop or FOLDER_DEFAULTS["eval_crop"])

    def classes_for(self, requested: int | None) -> int:
        """The class count of a run asking for ``requested`` (``data.num_classes``)."""
        if self.num_classes is not None:
            return self.num_classes
        return requested if requested is not None else int(self.default_classes or 0)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Make ``spec`` available as ``data.name=<spec.name>``."""
    if DATASETS.get(spec.name, spec) is not spec:
        raise ValueError(f"data set name {spec.name!r} is registered twice")
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"data.name={name!r} is invalid: must be one of {list(DATASETS)}"
        ) from None


def set_specific_keys() -> dict[str, list[str]]:
    """Keys only some data sets read -> the data sets that read them."""
    readers: dict[str, list[str]] = {}
    for spec in DATASETS.values():
        for key in spec.keys:
            readers.setdefault(key, []).append(spec.name)
    return readers


def check_set_keys(cfg: Any) -> None:
    """Refuse a key the chosen data set does not read (``data.train_size=64`` on CIFAR-100)
    when it differs from its default: it would be ignored silently. ``cfg``: a
    :class:`~defcon_exp.data.config.DataConfig` (or a node with the same attributes)."""
    spec = get_dataset(str(cfg.name))
    for key, readers in set_specific_keys().items():
        check_key(
            cfg, key in spec.keys or getattr(cfg, key) == getattr(DataConfig, key), key,
            f"it does not apply to data set {spec.name} (only {' and '.join(readers)} "
            f"{'reads' if len(readers) == 1 else 'read'} it); remove it, or pick data={readers[0]}",
        )


import_submodules("defcon_exp.data")  # every data set's file registers its spec
