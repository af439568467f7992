"""Build a run's objects from its config *by name*: model, optimiser, schedule.

No Hydra ``instantiate``: the config's ``_target_`` keys only document which builder a group
feeds (and must be the one of :data:`~defcon_exp.run.stored.ALLOWED_TARGETS`); the builders
are called directly with the group's plain values, so a config can never choose other code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from defcon_exp.data.registry import get_dataset
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import LRSchedule, Plateau, build_schedulers
from defcon_exp.models import model_from_config
from defcon_exp.models.complexity import flops_per_image
from defcon_exp.safety import without_code_keys

log = logging.getLogger("defcon_exp.train")

__all__ = ["build_model", "build_optimizer_and_schedule", "model_name", "plain", "run_facts"]


def _container(node: Any) -> dict[str, Any]:
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return dict(container)


def plain(node: Any, group: str) -> dict[str, Any]:
    """Config group ``group`` as a plain dict without its Hydra call keys (checked first)."""
    return without_code_keys(_container(node), group)


def model_name(model_cfg: Any) -> str:
    """A readable model name: the attention (``defcon``...) or ``resnet50`` for none."""
    attention = (
        plain(model_cfg, "model").get("attention", "none") if model_cfg is not None else "none"
    )
    return "resnet50" if attention in (None, "none") else str(attention)


def build_model(model_cfg: Any, num_classes: int, device: torch.device | str) -> nn.Module:
    """The CIFAR ResNet-50 of ``model_cfg`` (``attention``, ``kernel_size``,
    ``attention_kwargs``...) with ``num_classes`` outputs, on ``device``.

    The group goes to :func:`model_from_config` WITH its ``_target_`` (which checks it against
    the allow-list and the user-trusted builders); stripped here, a trusted builder was
    silently replaced by ResNet-50."""
    return model_from_config(_container(model_cfg), num_classes, device)


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


def run_facts(cfg: Any, model: nn.Module, num_classes: int, world_size: int) -> dict[str, Any]:
    """What a run's log and ``summary.json`` state about it beside the metrics: classes,
    evaluation image size, FLOPs per image (:mod:`defcon_exp.models.complexity`), the global
    batch and each process's share."""
    size = get_dataset(cfg.data.name).eval_size(cfg.data)
    flops = flops_per_image(model, size)
    global_batch = int(cfg.data.batch_size)
    log.info(
        "model size: %s parameters, %.4g GFLOPs per %dx%d image (%.4g G multiply-adds, the "
        "papers' GFLOPs) | batch: global %d = %d per process x %d processes",
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
        flops / 1e9,
        size,
        size,
        flops / 2e9,
        global_batch,
        global_batch // world_size,
        world_size,
    )
    return {
        "num_classes": num_classes,
        "image_size": size,
        "gflops_per_image": round(flops / 1e9, 4),
        "gmacs_per_image": round(flops / 2e9, 4),
        "processes": world_size,
        "global_batch": global_batch,
        "per_process_batch": global_batch // world_size,
    }
