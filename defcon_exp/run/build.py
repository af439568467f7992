"""Build a run's objects from its config *by name*: model, optimiser, schedule.

No Hydra ``instantiate``: the config's ``_target_`` keys only document which builder a group
feeds (and must be the one of :data:`~defcon_exp.run.stored.ALLOWED_TARGETS`); the builders
are called directly with the group's plain values, so a config can never choose other code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import LRSchedule, Plateau, build_schedulers
from defcon_exp.models import model_from_config
from defcon_exp.safety import without_code_keys

__all__ = ["build_model", "build_optimizer_and_schedule", "model_name", "plain"]


def plain(node: Any, group: str) -> dict[str, Any]:
    """Config group ``group`` as a plain dict without its Hydra call keys (checked first)."""
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return without_code_keys(dict(container), group)


def model_name(model_cfg: Any) -> str:
    """A readable model name: the attention (``defcon``...) or ``resnet50`` for none."""
    attention = plain(model_cfg, "model").get("attention", "none") if model_cfg is not None else "none"
    return "resnet50" if attention in (None, "none") else str(attention)


def build_model(model_cfg: Any, num_classes: int, device: torch.device | str) -> nn.Module:
    """The CIFAR ResNet-50 of ``model_cfg`` (``attention``, ``kernel_size``,
    ``attention_kwargs``...) with ``num_classes`` outputs, on ``device``."""
    container = plain(model_cfg, "model")  # checked against the allow-list
    target = model_cfg.get("_target_") if model_cfg is not None else None
    if target is not None:  # model_from_config picks the builder by it (checked again there)
        container["_target_"] = target
    return model_from_config(container, num_classes, device)


def build_optimizer_and_schedule(
    cfg: DictConfig | Mapping[str, Any], model: nn.Module, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, LRSchedule, Plateau | None]:
    """``cfg.optim`` -> optimiser over ``model``; ``cfg.scheduler`` -> (schedule, plateau)."""
    optimizer = build_optimizer(model, **plain(cfg["optim"], "optim"))
    scheduler = plain(cfg["scheduler"], "scheduler")
    schedule, plateau = build_schedulers(
        scheduler.pop("name"),
        optimizer=optimizer,
        epochs=int(cfg["trainer"]["epochs"]),
        steps_per_epoch=steps_per_epoch,
        **scheduler,
    )
    return optimizer, schedule, plateau
