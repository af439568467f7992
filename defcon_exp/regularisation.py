"""Config schema and value rules of the regularisation options (docs/regularisation.md).

``trainer.label_smoothing``, ``trainer.accumulate_grad_batches``, ``trainer.mix.*``,
``trainer.ema.*`` and ``model.drop_path_rate``; :func:`validate_regularisation` is called by
:func:`defcon_exp.config_rules.validate_config` and raises through its one-line ``rule``
(``data.auto_augment`` and ``data.random_erasing``: :func:`~defcon_exp.data.policies.check_policies`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["WEIGHT_CHOICES", "EMAConfig", "MixConfig", "validate_regularisation"]

#: ``trainer.ema.select``: which weights pick ``best.pt`` and give the headline
WEIGHT_CHOICES: tuple[str, ...] = ("raw", "ema")


@dataclass
class MixConfig:
    """``trainer.mix``: Mixup / CutMix as timm's ``Mixup`` switches between them."""

    mixup_alpha: float = 0.0
    """Mixup's Beta(alpha, alpha); 0 = off"""
    cutmix_alpha: float = 0.0
    """CutMix's Beta(alpha, alpha); 0 = off"""
    prob: float = 1.0
    """probability that a batch is mixed"""
    switch_prob: float = 0.5
    """with both on: probability of CutMix instead of Mixup"""

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


@dataclass
class EMAConfig:
    """``trainer.ema``: an exponential moving average of the weights (and BN buffers)."""

    enabled: bool = False
    """keep an exponential moving average of weights and BatchNorm buffers"""
    decay: float = 0.9998
    """the EMA's decay per optimiser step (e.g. 0.9998)

    The default is timm train.py's ``--model-ema-decay``."""
    select: str = "raw"
    """raw or ema: the weights that pick best.pt and give the headline"""


Rule = Callable[[str, bool, str], None]


def validate_regularisation(get: Callable[[str], Any], rule: Rule) -> None:
    """Check the regularisation keys of a composed config (``get(dotted key)``)."""
    rule("trainer.label_smoothing", 0 <= get("trainer.label_smoothing") < 1, "must be in [0, 1)")
    rule("trainer.accumulate_grad_batches", get("trainer.accumulate_grad_batches") >= 1,
         "must be an integer >= 1 (micro-batches per optimiser step)")
    for key in ("trainer.mix.mixup_alpha", "trainer.mix.cutmix_alpha"):
        rule(key, get(key) >= 0, "must be >= 0 (0 = off; 0.2 / 1.0 are common)")
    for key in ("trainer.mix.prob", "trainer.mix.switch_prob"):
        rule(key, 0 <= get(key) <= 1, "must be in [0, 1]")
    rule("trainer.ema.decay", 0 <= get("trainer.ema.decay") < 1, "must be in [0, 1), e.g. 0.9998")
    rule("trainer.ema.select", get("trainer.ema.select") in WEIGHT_CHOICES,
         f"must be one of {list(WEIGHT_CHOICES)}")
    rule("trainer.ema.select",
         get("trainer.ema.select") == "raw" or bool(get("trainer.ema.enabled")),
         "selecting the EMA weights needs trainer.ema.enabled=true")
    rule("model.drop_path_rate", 0 <= get("model.drop_path_rate") < 1, "must be in [0, 1)")
