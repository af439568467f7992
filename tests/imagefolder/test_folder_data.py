"""The image-folder data path: one-line errors, the corrupt-image policy, batches that are a
pure function of (seed, epoch) whatever the workers, and DDP shards that add up to the
single-process batches."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from defcon_exp.data import CorruptImageError, ImageFolderError, build_data

SMALL = {"train_crop": 32, "eval_resize": 36, "eval_crop": 32, "download": False}


def folder_cfg(root: Path, **extra) -> dict:
    return {"name": "imagefolder", "root": str(root), "batch_size": 6, "eval_batch_size": 5,
            "num_workers": 0, **SMALL, **extra}


def batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


@pytest.fixture
def copy(image_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(image_folder, tmp_path / "images"))


def _empty_class(root: Path) -> str:
    (root / "train" / "class_9").mkdir()
    return f"class folder {root / 'train' / 'class_9'}/ holds no images"


def _empty_file(root: Path) -> str:
    (root / "val" / "class_1" / "0.jpg").write_bytes(b"")
    return f"{root / 'val' / 'class_1' / '0.jpg'} is an empty (0-byte) file"


def _no_val(root: Path) -> str:
    shutil.rmtree(root / "val")
    return f"{root / 'val'}/ is missing: data.root={root} must hold train/ and val/"


def _unknown_val_class(root: Path) -> str:
    shutil.copytree(root / "val" / "class_0", root / "val" / "zebra")
    return "has class folder(s) ['zebra'] that train/ does not have"


def _other_files_only(root: Path) -> str:
    for image in (root / "train" / "class_2").iterdir():
        image.rename(image.with_suffix(".bmp"))
    return "holds no images (it holds 8 other files, e.g. 0.bmp)"


@pytest.mark.parametrize("broken", [_empty_class, _empty_file, _no_val, _unknown_val_class, _other_files_only])
def test_layout_errors_are_one_line_naming_the_place(copy: Path, broken) -> None:
    expected = broken(copy)
    before = sorted(copy.rglob("*"))
    with pytest.raises(ImageFolderError) as info:
        build_data(folder_cfg(copy), seed=0)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert sorted(copy.rglob("*")) == before  # nothing written


def test_missing_root_and_wrong_class_count_are_one_line(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageFolderError, match=r"data.root=.*nowhere does not exist or is not a folder"):
        build_data(folder_cfg(tmp_path / "nowhere"), seed=0)
    with pytest.raises(ImageFolderError, match="has 3 class folders in train/, but data=imagenet needs 1000"):
        build_data({**folder_cfg(copy), "name": "imagenet"}, seed=0)
    with pytest.raises(ValueError, match=r"data.num_classes=4 is invalid: .* has 3 class folders"):
        build_data(folder_cfg(copy, num_classes=4), seed=0)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("cutout", 8, "must be 0 for imagefolder"), ("loader", "tensor", "must be 'dataloader'"),
    ("download", True, "nothing can be downloaded"), ("eval_resize", 30, "must be >= data.eval_crop=32"),
])
def test_cifar_only_keys_do_not_silently_apply(copy: Path, key: str, value, rule: str) -> None:
    with pytest.raises(ValueError, match=f"data.{key}=.* is invalid: .*{rule}"):
        build_data(folder_cfg(copy, **{key: value}), seed=0)


def test_folder_keys_are_refused_on_cifar_shaped_sets() -> None:
    with pytest.raises(ValueError, match=r"data\.train_crop=64 is invalid: it does not apply to data set synthetic"):
        build_data({"name": "synthetic", "train_size": 20, "test_size": 10, "train_crop": 64}, seed=0)


def test_a_corrupt_image_stops_the_run_in_one_line_naming_the_file(copy: Path) -> None:
    bad = copy / "train" / "class_1" / "3.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a JPEG")
    loader = build_data(folder_cfg(copy, num_workers=1), seed=0).train
    with pytest.raises(CorruptImageError) as info:
        batches(loader, 0)
    message = str(info.value)
    assert message.startswith(f"{bad} cannot be decoded (") and "\n" not in message
    assert "data.max_bad_images=1" in message


def test_allowed_corrupt_images_are_replaced_logged_once_and_counted(copy: Path, caplog) -> None:
    bad = copy / "train" / "class_1" / "3.jpg"
    bad.write_bytes(b"garbage")
    loader = build_data(folder_cfg(copy, max_bad_images=1), seed=0).train
    with caplog.at_level(logging.WARNING, logger="defcon_exp.data"):
        first, second = batches(loader, 0), batches(loader, 1)
    assert sum(len(labels) for _, labels in first) == 24 == sum(len(labels) for _, labels in second)
    warnings = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "corrupt image 1 of at most 1" in warnings[0]
    (copy / "train" / "class_2" / "0.jpg").write_bytes(b"garbage too")
    with pytest.raises(CorruptImageError, match=r"class_2/0\.jpg cannot be decoded"):
        batches(loader, 2)


def test_batches_are_a_pure_function_of_seed_and_epoch_whatever_the_workers(image_folder: Path) -> None:
    policies = {"auto_augment": "trivialaugment", "random_erasing": 0.5, "val_size": 3}
    single = build_data(folder_cfg(image_folder, **policies), seed=4)
    workers = build_data(folder_cfg(image_folder, num_workers=2, **policies), seed=4)
    for epoch in (0, 1):
        for (a, y), (b, z) in zip(batches(single.train, epoch), batches(workers.train, epoch), strict=True):
            assert a.shape[1:] == (3, 32, 32) and torch.equal(a, b) and torch.equal(y, z)
    assert not torch.equal(batches(single.train, 0)[0][0], batches(single.train, 1)[0][0])
    assert single.val.num_samples == 3 and single.test.num_samples == 12
    (test_images, _), *_ = batches(single.test, 0)
    assert test_images.shape == (5, 3, 32, 32)


def test_two_rank_shards_make_up_the_single_process_batches(image_folder: Path) -> None:
    cfg = folder_cfg(image_folder, random_erasing=0.5)
    single = batches(build_data(cfg, seed=2).train, 1)
    ranks = [batches(build_data(cfg, seed=2, rank=r, world_size=2).train, 1) for r in (0, 1)]
    for whole, part0, part1 in zip(single, *ranks, strict=True):
        assert torch.equal(whole[0], torch.cat([part0[0], part1[0]]))
        assert torch.equal(whole[1], torch.cat([part0[1], part1[1]]))
