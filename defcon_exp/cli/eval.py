"""``defcon-eval ckpt=<checkpoint or run dir> [split=test|val] [data=...] [data.key=value ...] [out=file.json]``

Rebuilds the model from the config stored in the checkpoint, evaluates it and prints
top-1 / top-5 / loss; the JSON goes next to the checkpoint (``<name>.eval.json``) or to ``out=``.
Overrides change the stored config (``data.eval_batch_size=1024``, ``trainer.device=cpu``,
``data.root=/datasets``, ``trainer.precision=32``); ``data=<option>`` swaps the whole data
group. The run's ``trainer.precision`` and ``trainer.channels_last`` apply (a checkpoint of the
retired ``trainer.amp`` maps as in training); ``trainer.compile`` does not (one pass would
mostly time the compiler).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from defcon_exp.cli.checkpoint_args import parse_checkpoint_args
from defcon_exp.cli.train import USER_ERRORS, build_model, schema_config
from defcon_exp.config import ConfigError
from defcon_exp.data import build_data
from defcon_exp.engine.checkpoint import find_checkpoint, load_checkpoint, load_model_state
from defcon_exp.engine.loop import evaluate
from defcon_exp.engine.precision import check_precision_supported, parse_precision
from defcon_exp.engine.seed import resolve_device
from defcon_exp.engine.writers import write_json

log = logging.getLogger("defcon_exp.eval")
SPECIAL_KEYS = ("ckpt", "out", "split")


def evaluate_checkpoint(
    ckpt: str | Path,
    overrides: Sequence[str] = (),
    split: str = "test",
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``ckpt`` (a checkpoint file or a run dir -> its ``checkpoints/best.pt`` if
    present, else ``last.pt``) on ``split``; write and return the result dict."""
    path = Path(ckpt)
    if path.is_dir() and (path / "checkpoints" / "best.pt").is_file():
        path = path / "checkpoints" / "best.pt"
    path = find_checkpoint(path)
    state = load_checkpoint(path)
    cfg = schema_config(state["config"])
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "data":
            with initialize_config_module("defcon_exp.conf", version_base="1.3"):
                cfg.data = compose("config", overrides=[f"data={override.value()}"]).data
        elif override.is_delete():
            raise ConfigError(f"~{key} is invalid: defcon-eval cannot delete keys")
        else:
            OmegaConf.update(cfg, key, override.value(), merge=True, force_add=override.is_add())
    if split not in ("test", "val"):
        raise ConfigError(f"split={split!r} is invalid: must be 'test' or 'val'")
    device = resolve_device(cfg.trainer.device)
    precision = parse_precision(cfg.trainer.precision)
    check_precision_supported(precision, device)
    data = build_data(cfg.data, seed=cfg.seed, device=device)
    loader = data.test if split == "test" else data.val
    if loader is None:
        raise ConfigError(
            "split='val' is invalid: the data config has no validation split (data.val_size=0)"
        )
    model = build_model(cfg.model, data.num_classes, device)
    load_model_state(model, state["model"], path)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics = evaluate(model, loader, device, precision, cfg.trainer.channels_last)
    result = {
        "checkpoint": str(path.resolve()),
        "epoch": state.get("epoch"),
        "model": state.get("model_name"),
        "split": split,
        "data": cfg.data.name,
        "precision": precision,
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "loss": metrics["loss"],
        "num_images": metrics["count"],
        "overrides": list(overrides),
    }
    target = Path(out) if out is not None else path.with_name(f"{path.stem}.eval.json")
    write_json(target, result)
    result["written_to"] = str(target)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error, 2 usage)."""
    parsed = parse_checkpoint_args("defcon-eval", __doc__, argv, SPECIAL_KEYS, logging.INFO)
    if isinstance(parsed, int):
        return parsed
    special, rest = parsed
    try:
        result = evaluate_checkpoint(
            special["ckpt"], rest, special.get("split", "test"), special.get("out")
        )
    except USER_ERRORS as err:
        print(f"defcon-eval: error: {err}", file=sys.stderr)
        return 1
    print(
        f"{result['split']}: top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}"
        f"  ({result['num_images']} images, epoch {result['epoch']}) -> {result['written_to']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
