"""``defcon-inspect ckpt=<checkpoint or run dir> [n_images=256] [out=DIR] [split=test|val|train] [key=value ...]``

Rebuilds the model from the config stored in the checkpoint (as defcon-eval does), runs
``n_images`` images of the run's own data (stored data config; synthetic runs work offline)
and prints per stage: for DEFCON-family modules mean |offset|, the share of taps reaching
further than the kernel half-width (|sampled channel - c| > k//2), the mean channel distance
sampled; for every attention the channel weight mean / std and the entropy of the
normalised weights. Writes ``inspect.json`` (statistics + histograms) and, with matplotlib,
``inspect_stage<N>.png`` into ``out=`` (default: ``<run dir>/inspect``). Other ``key=value``
arguments override the stored config (``trainer.device=cpu``, ``data.root=/datasets``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from defcon_exp.analysis.inspect import attention_statistics
from defcon_exp.cli.checkpoint_args import parse_checkpoint_args
from defcon_exp.cli.train import USER_ERRORS, build_model, schema_config
from defcon_exp.config import ConfigError
from defcon_exp.data import build_data
from defcon_exp.engine.checkpoint import find_checkpoint, load_checkpoint, load_model_state
from defcon_exp.engine.seed import resolve_device
from defcon_exp.engine.writers import write_json

log = logging.getLogger("defcon_exp.inspect")
SPECIAL_KEYS = ("ckpt", "out", "n_images", "split")


def resolve_checkpoint(ckpt: str | Path) -> Path:
    """A checkpoint file, or a run dir -> its ``checkpoints/best.pt`` if present, else ``last.pt``."""
    path = Path(ckpt)
    if path.is_dir() and (path / "checkpoints" / "best.pt").is_file():
        path = path / "checkpoints" / "best.pt"
    return find_checkpoint(path)


def _images(loader: Any, n_images: int, device: torch.device) -> torch.Tensor:
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
    writes ``inspect.json`` (and PNGs with matplotlib) into ``out`` and returns the dict."""
    if n_images < 1:
        raise ConfigError(f"n_images={n_images} is invalid: must be >= 1")
    if split not in ("test", "val", "train"):
        raise ConfigError(f"split={split!r} is invalid: must be 'test', 'val' or 'train'")
    path = resolve_checkpoint(ckpt)
    state = load_checkpoint(path)
    cfg = schema_config(state["config"])
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.is_delete():
            raise ConfigError(f"~{override.key_or_group} is invalid: defcon-inspect cannot delete keys")
        OmegaConf.update(
            cfg, override.key_or_group, override.value(), merge=True, force_add=override.is_add()
        )
    device = resolve_device(cfg.trainer.device)
    data = build_data(cfg.data, seed=cfg.seed, device=device)
    loader = getattr(data, split)
    if loader is None:
        raise ConfigError(f"split={split!r} is invalid: the data config has no such split")
    model = build_model(cfg.model, data.num_classes, device)
    load_model_state(model, state["model"], path)
    images = _images(loader, n_images, device)
    stats = attention_statistics(model, images)
    stats.update(
        checkpoint=str(path.resolve()),
        epoch=state.get("epoch"),
        model=state.get("model_name"),
        split=split,
        data=cfg.data.name,
    )
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    target = Path(out) if out is not None else run_dir / "inspect"
    target.mkdir(parents=True, exist_ok=True)
    stats["plots"] = _plot(stats, target)
    write_json(target / "inspect.json", stats)
    stats["written_to"] = str(target / "inspect.json")
    return stats


def _plot(stats: dict[str, Any], target: Path) -> list[str] | str:
    """One PNG per stage with the histograms; a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no PNGs (install the `plot` extra)"
    written = []
    titles = {
        "weight_hist": "channel weight",
        "offset_hist": "learned offset",
        "distance_hist": "|sampled channel - c|",
    }
    for stage, values in stats["stages"].items():
        hists = [(n, values[n]) for n in titles if n in values]
        if not hists:
            continue
        fig, axes = plt.subplots(1, len(hists), figsize=(4 * len(hists), 3), squeeze=False)
        for ax, (name, hist) in zip(axes[0], hists, strict=True):
            edges = hist["edges"]
            ax.stairs(hist["counts"], edges)
            ax.set_title(f"stage {stage}: {titles[name]}", fontsize=9)
        fig.tight_layout()
        path = target / f"inspect_stage{stage}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    return written


def format_table(stats: dict[str, Any]) -> str:
    """The per-stage statistics as a fixed-width text table."""
    columns = [
        ("stage", None, "{}"),
        ("C", "channels", "{}"),
        ("k", "kernel_size", "{}"),
        ("|offset|", "offset_abs_mean", "{:.4f}"),
        ("beyond k//2", "share_beyond_half_width", "{:.2%}"),
        ("outside C", "share_outside_channels", "{:.2%}"),
        ("|distance|", "channel_distance_mean", "{:.3f}"),
        ("w mean", "weight_mean", "{:.4f}"),
        ("w std", "weight_std", "{:.4f}"),
        ("entropy", "entropy_mean", "{:.4f}"),
        ("H/logC", "entropy_normalised", "{:.6f}"),
    ]
    rows = [[c[0] for c in columns]]
    for stage, values in stats["stages"].items():
        row = []
        for _title, key, fmt in columns:
            value = stage if key is None else values.get(key)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error, 2 usage)."""
    parsed = parse_checkpoint_args("defcon-inspect", __doc__, argv, SPECIAL_KEYS, logging.WARNING)
    if isinstance(parsed, int):
        return parsed
    special, rest = parsed
    try:
        n_images = int(special.get("n_images", 256))
    except ValueError:
        print(f"defcon-inspect: error: n_images={special['n_images']!r} is not an integer",
              file=sys.stderr)
        return 2
    try:
        stats = inspect_checkpoint(
            special["ckpt"], rest, n_images, special.get("out"), special.get("split", "test")
        )
    except USER_ERRORS as err:
        print(f"defcon-inspect: error: {err}", file=sys.stderr)
        return 1
    print(
        f"{stats['model']} ({stats['attention'] or 'no attention'}), epoch {stats['epoch']}, "
        f"{stats['num_images']} {stats['split']} images of {stats['data']}"
    )
    if stats["stages"]:
        print(format_table(stats))
    else:
        print("no attention modules in this model: nothing to inspect")
    if isinstance(stats["plots"], str):
        print(stats["plots"])
    print(f"-> {stats['written_to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
