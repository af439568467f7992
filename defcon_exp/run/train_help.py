"""``defcon-train --help``: the groups with their options, and every key of the config this
command line composes, with its value and one line of help: the first paragraph of the key's
attribute docstring in the schema (:func:`defcon_exp.config.schema_help`).

Keys a data set ignores are left out (``data.train_size`` under CIFAR, ``data.root`` under
the synthetic set): ``defcon-train data=synthetic --help`` shows the synthetic set's keys.
No torch import: it answers in about a second.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from defcon_exp.config import schema_help
from defcon_exp.run.launch import group_options
from defcon_exp.run.stored import compose_config

__all__ = ["GROUP_HELP", "HELP_FLAGS", "HIDDEN_UNLESS", "OTHER_GROUPS", "render_help"]

HELP_FLAGS = ("-h", "--help")

#: config groups (``group=option``) in the order the help lists them
GROUP_HELP: dict[str, str] = {
    "model": "the attention: one channel-attention module in every block of the network",
    "arch": "the network: cifar_resnet50 (default) or resnet18..152_imagenet (docs/imagenet.md)",
    "data": "the images: CIFAR-100 (the paper), CIFAR-10, an offline synthetic set, your own "
    "image folder (imagefolder) or ImageNet",
    "optim": "the optimiser",
    "scheduler": "the learning-rate schedule (epochs are epochs, warm-up included)",
    "trainer": "the loop: epochs, device, precision, logging, checkpoints",
    "experiment": "a whole recipe (overrides several groups), e.g. smoke or defcon_best",
    "hparams_search": "an Optuna search preset (docs/search.md)",
    "debug": "fast_dev_run: a few batches of every phase, one epoch, a scratch dir",
}

#: groups below hydra/ that users pick on the command line
OTHER_GROUPS: dict[str, str] = {
    "hydra/launcher": "how a -m sweep runs its jobs (local_parallel: joblib, slurm_*: submitit)",
    "hydra/sweeper": "optuna: a hyper-parameter search instead of a grid (docs/search.md)",
}

#: keys shown only when ``data.name`` is one of the listed values (the others ignore them)
HIDDEN_UNLESS: dict[str, tuple[str, ...]] = {
    "data.train_size": ("synthetic",),
    "data.test_size": ("synthetic",),
    "data.root": ("cifar10", "cifar100", "imagefolder", "imagenet"),
    "data.download": ("cifar10", "cifar100", "imagefolder", "imagenet"),
    **{
        f"data.{key}": ("imagefolder", "imagenet")
        for key in ("train_crop", "eval_resize", "eval_crop", "max_bad_images")
    },
}


def _examples(template: str) -> list[str]:
    """The ``Examples:`` block of ``hydra.help.template`` (conf/hydra/default.yaml)."""
    lines = template.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Examples:")), None)
    if start is None:
        return []
    block = list(itertools.takewhile(lambda line: not line.startswith("=="), lines[start:]))
    return [*block[: len(block) - (not block[-1].strip())], ""]


def _leaves(node: Any, prefix: str, helps: dict[str, str]) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf below ``node``; a key of the schema (``helps``)
    is a leaf even when its value is a dict (``model.attention_kwargs``)."""
    if isinstance(node, dict) and node and f"{prefix[:-1]}" not in helps:
        out: list[tuple[str, Any]] = []
        for key, value in node.items():
            out += _leaves(value, f"{prefix}{key}.", helps)
        return out
    return [(prefix[:-1], node)]


def render_help(overrides: Sequence[str]) -> str:
    """The help text for ``defcon-train <overrides> --help``."""
    cfg = compose_config([a for a in overrides if not a.startswith("-")], hydra_node=True)
    hydra = cfg.hydra
    choices = dict(hydra.runtime.choices)
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    data_name = str(cfg.data.name)
    lines = [str(hydra.help.header), "", *_examples(str(hydra.help.template))]
    lines += ["Config groups (group=option; [x] = this command's choice):"]
    for group, text in {**GROUP_HELP, **OTHER_GROUPS}.items():
        chosen = choices.get(group)
        options = [f"[{o}]" if o == chosen else o for o in group_options(group)]
        lines += [f"  {group:<15} {text}", f"  {'':<15}   {', '.join(options)}"]
    lines += ["", "Keys (key=value), with this command's values:"]
    rows: list[tuple[str, str, str]] = []
    helps = schema_help()
    for top, node in container.items():
        for key, value in _leaves(node, f"{top}.", helps):
            shown_for = HIDDEN_UNLESS.get(key)
            if key.endswith("._target_") or (shown_for and data_name not in shown_for):
                continue
            shown = value if isinstance(value, str) else json.dumps(value)  # null, true, [60, 120]
            rows.append((key, shown, helps.get(key, "")))
    width = max(len(f"{k}={v}") for k, v, _ in rows) + 2
    group = None
    for key, value, text in rows:
        head = key.partition(".")[0] if "." in key else ""
        if head != group:
            group = head
            chosen = f" ({choices[head]})" if head in choices else ""
            lines.append(f"  {head}{chosen}:" if head else "  (top level):")
        lines.append(f"    {f'{key}={value}':<{width}}{text}".rstrip())
    lines += ["", str(hydra.help.footer)]
    return "\n".join(lines)
