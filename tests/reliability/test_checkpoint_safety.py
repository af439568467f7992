"""Atomic checkpoint writes and safe, clearly failing loads (issue 6, points 3 and 4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from engine_fixtures import tiny_model
from torch import nn

from defcon_exp.cli.eval import main as eval_main
from defcon_exp.engine import checkpoint as ckpt_module
from defcon_exp.engine.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)


def state(marker: float) -> dict:
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(marker)
    return {"model": model.state_dict(), "config": {"marker": marker}, "epoch": 1}


def test_failed_torch_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_checkpoint(state(1.0), tmp_path / "last.pt")
    real_save = torch.save

    def half_then_crash(obj: object, handle) -> None:  # a crash in the middle of the write
        real_save(obj, handle)
        handle.truncate(100)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_module.torch, "save", half_then_crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(state(2.0), target)
    assert load_checkpoint(target)["config"] == {"marker": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp files left


def test_failed_rename_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_checkpoint(state(1.0), tmp_path / "last.pt")
    written: list[Path] = []

    def crash(src: str, dst: str) -> None:
        written.append(Path(src))
        assert Path(src).parent == target.parent and Path(src).stat().st_size > 0  # same folder, complete
        raise OSError("power cut (simulated)")

    monkeypatch.setattr(ckpt_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(state(2.0), target)
    monkeypatch.undo()
    assert written and not written[0].exists()
    assert load_checkpoint(target)["config"] == {"marker": 1.0}


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.mkdir, (self.sentinel,))


def test_pickled_objects_are_refused_not_executed(tmp_path: Path) -> None:
    sentinel = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "extra": Payload(str(sentinel))}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt was refused: it holds pickled Python objects") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not sentinel.exists()


@pytest.mark.parametrize("kind", ["truncated", "text", "empty", "foreign", "not_a_dict"])
def test_unusable_files_fail_with_one_clear_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    good = tmp_path / "good.pt"
    save_checkpoint(state(1.0), good)
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        needle = "truncated or corrupt"
    elif kind == "text":
        path.write_text("model: resnet50\nthis is not a checkpoint\n")
        needle = "not a readable checkpoint|truncated or corrupt"
    elif kind == "empty":
        path.write_bytes(b"")
        needle = "truncated or corrupt"
    elif kind == "foreign":  # e.g. a torchvision state dict
        torch.save(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).state_dict(), path)
        needle = r"not a defcon_exp checkpoint .*found a dict with keys \['0.bias'"
    else:
        torch.save([torch.zeros(2)], path)
        needle = "not a defcon_exp checkpoint .*found list"
    with pytest.raises(CheckpointError, match=needle) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_checkpoint_of_another_model_lists_the_mismatching_keys(tmp_path: Path) -> None:
    other = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4),
                          nn.Linear(4, 4))
    with pytest.raises(CheckpointError) as info:
        load_model_state(tiny_model(), other.state_dict(), tmp_path / "last.pt")
    message = str(info.value)
    assert "last.pt does not fit this model" in message
    assert "1.weight shape (32, 48) vs model (16, 48)" in message and "unexpected 4.weight" in message
    assert "\n" not in message


def test_eval_of_a_mismatching_checkpoint_is_a_one_line_error(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """defcon-eval builds the model from the checkpoint's config; foreign weights fail cleanly."""
    from cli_helpers import TINY
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "model._target_=tiny_net.tiny_cifar_model"])
    path = tmp_path / "last.pt"
    torch.save({"model": tiny_model().state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, path)
    assert eval_main([f"ckpt={path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("defcon-eval: error: ") and "does not fit this model" in err
    assert "\n" not in err and "Traceback" not in err
