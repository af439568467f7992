"""A small attention network for engine tests that need the real attention path (deform op,
fused tail) without ResNet-50's cost, and a config that trains it through ``train()``."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf
from torch import nn

from defcon_exp.attention import create_attention, get_attention_class
from defcon_exp.models import Bottleneck

BATCH = 16  # = data.batch_size = data.eval_batch_size: one static shape (no recompiles)


def tiny_attention_net(
    num_classes: int = 4,
    attention: str = "defcon",
    kernel_size: object = 3,
    attention_kwargs: dict | None = None,
    stem: str = "cifar",
    device: torch.device | str | None = None,
) -> nn.Module:
    """Stem -> one bottleneck with ``attention`` (fused tail: deform op + scale_add_relu)
    -> pool -> linear. ``Tensor[B, 3, H, W] -> Tensor[B, num_classes]``. Takes the model
    config's keys, so ``model._target_`` can point here."""
    factory = {"device": device}
    uses_kernel_size = getattr(get_attention_class(attention), "uses_kernel_size", False)
    kwargs = {"kernel_size": kernel_size} if uses_kernel_size else {}
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False, **factory),
        nn.BatchNorm2d(16, **factory),
        nn.ReLU(),
        Bottleneck(
            16,
            4,
            1,
            create_attention(attention, 16, **kwargs, **(attention_kwargs or {}), **factory),
            **factory,
        ),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes, **factory),
    )


def tiny_net_config(run_dir: Path, *extra: str) -> DictConfig:
    """The composed config of a tiny run of :func:`tiny_attention_net` on the synthetic set
    (batches of :data:`BATCH`, 2 training batches per epoch, no validation split)."""
    overrides = [
        "data=synthetic",
        "data.num_classes=4",
        "data.train_size=32",
        "data.val_size=0",
        "data.test_size=16",
        f"data.batch_size={BATCH}",
        f"data.eval_batch_size={BATCH}",
        "data.loader=tensor",
        "data.num_workers=0",
        "trainer.device=cpu",
        "trainer.progress=false",
        "optim.lr=0.01",
        *extra,
    ]
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"run_dir={run_dir}"])
    OmegaConf.update(cfg, "model._target_", f"{__name__}.tiny_attention_net")
    OmegaConf.update(cfg, "model.attention", "defcon")
    OmegaConf.update(cfg, "model.kernel_size", 3)
    return cfg
