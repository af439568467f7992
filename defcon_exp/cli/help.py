"""``defcon-train --help``: the groups with their options, and every key of the config this
command line composes, with its value and one line of help (:mod:`defcon_exp.cli.key_help`).

Keys a data set ignores are left out (``data.train_size`` under CIFAR, ``data.root`` under
the synthetic set): ``defcon-train data=synthetic --help`` shows the synthetic set's keys.
No torch import: it answers in about a second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defcon_exp.cli.key_help import GROUP_HELP, HIDDEN_UNLESS, KEY_HELP, OTHER_GROUPS
from defcon_exp.run.launch import group_options

__all__ = ["HELP_FLAGS", "render_help"]

HELP_FLAGS = ("-h", "--help")


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # null, true, 0.1, [60, 120, 160], {}


def _examples(template: str) -> list[str]:
    """The ``Examples:`` block of ``hydra.help.template`` (conf/hydra/default.yaml)."""
    lines = template.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Examples:")), None)
    if start is None:
        return []
    block = []
    for line in lines[start:]:
        if line.startswith("=="):
            break
        block.append(line)
    return [*block[: len(block) - (not block[-1].strip())], ""]


def _leaves(node: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node and f"{prefix[:-1]}" not in KEY_HELP:
        out: list[tuple[str, Any]] = []
        for key, value in node.items():
            out += _leaves(value, f"{prefix}{key}.")
        return out
    return [(prefix[:-1], node)]


def render_help(overrides: Sequence[str]) -> str:
    """The help text for ``defcon-train <overrides> --help``."""
    cfg = _compose([a for a in overrides if not a.startswith("-")])
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
    for top, node in container.items():
        for key, value in _leaves(node, f"{top}."):
            shown_for = HIDDEN_UNLESS.get(key)
            if key.endswith("._target_") or (shown_for and data_name not in shown_for):
                continue
            rows.append((key, _value(value), KEY_HELP.get(key, "")))
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
