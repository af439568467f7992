"""What ``defcon-eval`` and ``defcon-inspect`` do with a checkpoint: rebuild its run by name
from the stored config (checked: nothing in it chooses code), plus command-line overrides,
then evaluate it or inspect its attention modules."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from defcon_exp.analysis.inspect import attention_statistics
from defcon_exp.analysis.inspect_plots import plot_statistics
from defcon_exp.config import ConfigError
from defcon_exp.data import build_data
from defcon_exp.engine.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    load_model_state,
    run_dir_of_checkpoint,
)
from defcon_exp.engine.ema import ema_weights
from defcon_exp.engine.loop import evaluate
from defcon_exp.engine.precision import check_precision_supported, parse_precision
from defcon_exp.engine.run_state import non_finite_tensors
from defcon_exp.engine.seed import resolve_device
from defcon_exp.engine.writers import write_json
from defcon_exp.regularisation import WEIGHT_CHOICES
from defcon_exp.run.build import build_model
from defcon_exp.run.lock import RunDirBusy, hold_run_dir
from defcon_exp.run.stored import apply_overrides, compose_config, schema_config
from defcon_exp.run_dir import is_in_run_dir

__all__ = [
    "StoredRun",
    "eval_result_name",
    "evaluate_checkpoint",
    "inspect_checkpoint",
    "load_stored_run",
]


@dataclass
class StoredRun:
    """A checkpoint's run rebuilt: its config (with overrides), model (weights loaded), data."""

    path: Path
    state: dict[str, Any]
    cfg: DictConfig
    device: torch.device
    model: torch.nn.Module
    data: Any

    def facts(self, split: str) -> dict[str, Any]:
        """What a tool's result states about the checkpoint it read on ``split``."""
        return {"checkpoint": str(self.path.resolve()), "epoch": self.state.get("epoch"),
                "model": self.state.get("model_name"), "split": split, "data": self.cfg.data.name}


@contextlib.contextmanager
def writing_into_run_dir(ckpt: Path, tool: str) -> Iterator[Path]:
    """Hold the lock of ``ckpt``'s run dir (``<run>/checkpoints/x.pt``) while ``tool`` writes
    its default output there, checked to stay inside that dir (symlinks are not followed out
    of it); yields the run dir. A checkpoint outside a run dir needs no lock."""
    run_dir = run_dir_of_checkpoint(ckpt)
    if not is_in_run_dir(ckpt):
        yield run_dir
        return
    try:
        with hold_run_dir(run_dir, create=False):
            yield run_dir
    except RunDirBusy as err:
        raise RunDirBusy(f"{tool}: {err}; or pass out=<another path> to write elsewhere") from None


def load_stored_run(ckpt: str | Path, overrides: Sequence[str], tool: str) -> StoredRun:
    """Rebuild ``ckpt``'s run: config = stored + ``overrides`` (``data=<option>`` swaps the
    data group), data built from it, model by name with the checkpoint's weights. ``ckpt``:
    a checkpoint file, or a run dir -> its ``checkpoints/best.pt`` if present, else ``last.pt``."""
    path = Path(ckpt)
    if path.is_dir() and (path / "checkpoints" / "best.pt").is_file():
        path = path / "checkpoints" / "best.pt"
    path = find_checkpoint(path)
    state = load_checkpoint(path)
    cfg = schema_config(state["config"], str(path))
    cfg = apply_overrides(cfg, overrides, f"for {tool}",
                          groups={"data": lambda option: compose_config([f"data={option}"]).data})
    device = resolve_device(cfg.trainer.device)
    data = build_data(cfg.data, seed=cfg.seed, device=device)
    model = build_model(cfg.model, data.num_classes, device)
    load_model_state(model, state["model"], path)
    bad = non_finite_tensors(model)  # training never writes NaN/Inf weights
    if bad:
        raise ConfigError(
            f"{path} holds NaN/Inf weights ({len(bad)} tensors, e.g. {', '.join(bad[:2])}): "
            "training never writes those, so the file was altered; use another checkpoint"
        )
    return StoredRun(path, state, cfg, device, model, data)


def use_weights(run: StoredRun, weights: str | None) -> str:
    """Load the ``raw`` or ``ema`` weights of ``run``'s checkpoint into ``run.model``
    (``None``: the ones the run selected, ``trainer.ema.select``); which ones."""
    chosen = weights if weights is not None else run.state.get("weights", "raw")
    if chosen not in WEIGHT_CHOICES:
        raise ConfigError(f"weights={chosen!r} is invalid: must be one of {list(WEIGHT_CHOICES)}")
    if chosen == "ema":
        if run.state.get("ema") is None:
            raise ConfigError(
                f"weights='ema' is invalid: {run.path} holds no EMA weights (trained without "
                "trainer.ema.enabled=true); use weights=raw"
            )
        load_model_state(run.model, ema_weights(run.state["ema"]), run.path)
    return chosen


def evaluate_checkpoint(
    ckpt: str | Path,
    overrides: Sequence[str] = (),
    split: str = "test",
    out: str | Path | None = None,
    weights: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``ckpt`` (a checkpoint file or a run dir -> its ``checkpoints/best.pt`` if
    present, else ``last.pt``) on ``split`` with its ``weights`` (``raw`` | ``ema``; default:
    the run's selected ones); write and return the result dict."""
    if split not in ("test", "val"):
        raise ConfigError(f"split={split!r} is invalid: must be 'test' or 'val'")
    run = load_stored_run(ckpt, overrides, "defcon-eval")
    chosen = use_weights(run, weights)
    precision = parse_precision(run.cfg.trainer.precision)
    check_precision_supported(precision, run.device)
    loader = run.data.test if split == "test" else run.data.val
    if loader is None:
        raise ConfigError(
            "split='val' is invalid: the data config has no validation split (data.val_size=0)"
        )
    model = run.model
    if run.cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics = evaluate(model, loader, run.device, precision, run.cfg.trainer.channels_last)
    result = {
        **run.facts(split),
        "precision": precision,
        "weights": chosen,
        **{k: metrics[k] for k in ("top1", "top5", "loss")},
        "num_images": metrics["count"],
        "overrides": list(overrides),
    }
    target = Path(out) if out is not None else run.path.with_name(eval_result_name(run.path, split, chosen))
    _refuse_other_result(target, result)
    with (contextlib.nullcontext() if out is not None
          else writing_into_run_dir(run.path, "defcon-eval")):
        write_json(target, result)
    result["written_to"] = str(target)
    return result


def eval_result_name(checkpoint: Path, split: str, weights: str) -> str:
    """``<checkpoint stem>.eval.<split>.<weights>.json`` (``best.eval.val.ema.json``): a
    result is named by what it holds, so evaluating another split or weights adds a file.
    (Results before this naming were ``<stem>.eval.json``; they are left as they are.)"""
    return f"{checkpoint.stem}.eval.{split}.{weights}.json"


#: what makes two evaluation results the same measurement (a re-run may replace it)
_RESULT_IDENTITY = ("checkpoint", "split", "weights", "data", "overrides")


def _refuse_other_result(target: Path, result: dict[str, Any]) -> None:
    """Refuse to replace ``target`` unless it holds the same measurement (same checkpoint,
    split, weights, data and overrides: a re-evaluation refreshes it)."""
    if not target.exists():
        return
    try:
        old = json.loads(target.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        old = None
    old = old if isinstance(old, dict) else {}
    differ = [f"{k} {old.get(k)!r} there, {result[k]!r} now" for k in _RESULT_IDENTITY
              if old.get(k) != result[k]]
    if differ:
        what = "; ".join(differ) if old else "it is not an evaluation result"
        raise ConfigError(
            f"{target} already holds a different result ({what}); it is kept: pass "
            "out=<new file>.json"
        )


def _images(loader: Any, n_images: int, device: torch.device) -> torch.Tensor:
    """The first ``n_images`` images ``Tensor[N, 3, H, W]`` of ``loader`` (epoch 0's order)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0)
    parts, total = [], 0
    for images, _labels in loader:
        parts.append(images.to(device))
        total += images.shape[0]
        if total >= n_images:
            break
    if not parts:
        raise ConfigError("the data split is empty: nothing to inspect")
    return torch.cat(parts)[:n_images]


def inspect_checkpoint(
    ckpt: str | Path,
    overrides: Sequence[str] = (),
    n_images: int = 256,
    out: str | Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Statistics of ``ckpt``'s attention modules on ``n_images`` images of ``split``;
    writes ``inspect.json`` and PNGs into ``out`` and returns the dict."""
    if n_images < 1:
        raise ConfigError(f"n_images={n_images} is invalid: must be >= 1")
    if split not in ("test", "val", "train"):
        raise ConfigError(f"split={split!r} is invalid: must be 'test', 'val' or 'train'")
    run = load_stored_run(ckpt, overrides, "defcon-inspect")
    loader = getattr(run.data, split)
    if loader is None:
        raise ConfigError(f"split={split!r} is invalid: the data config has no such split")
    stats = attention_statistics(run.model, _images(loader, n_images, run.device))
    stats.update(run.facts(split))
    with contextlib.ExitStack() as held:
        if out is not None:
            target = Path(out)
        else:
            target = held.enter_context(writing_into_run_dir(run.path, "defcon-inspect")) / "inspect"
        target.mkdir(parents=True, exist_ok=True)
        stats["plots"] = plot_statistics(stats, target)
        write_json(target / "inspect.json", stats)
    stats["written_to"] = str(target / "inspect.json")
    return stats
