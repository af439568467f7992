"""Structured configs (Hydra ConfigStore schemas) and the run-dir resolvers.

Importing this module registers:

* ``defcon_schema`` in Hydra's ConfigStore — the typed top-level schema that
  ``conf/config.yaml`` lists first in its defaults, so every group file is merged onto
  typed dataclasses (a wrong type or an unknown key fails at composition);
* the OmegaConf resolvers ``defcon_run_dir`` / ``defcon_hydra_subdir`` used by
  ``conf/hydra/default.yaml`` to send ``resume=...`` runs back to their original run dir.

The *values* (``optim.lr > 0``, ``trainer.epochs >= 1``...) are checked by
:func:`defcon_exp.config_rules.validate_config`, which raises :class:`ConfigError` naming
the key, the value and the rule, before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from defcon_exp.analysis.objectives import SearchConfig
from defcon_exp.data.config import DataConfig
from defcon_exp.engine.early_stopping import EarlyStoppingConfig
from defcon_exp.engine.run_dir import hydra_output_subdir, hydra_run_dir
from defcon_exp.regularisation import EMAConfig, MixConfig

# The schema and the resolvers import no torch: ``defcon-train --help`` and command-line
# checks answer in about a second.

__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "OptimConfig",
    "PlateauConfig",
    "SchedulerConfig",
    "TrainerConfig",
    "register_configs",
]


class ConfigError(ValueError):
    """A config value breaks a rule; the message names key, value and rule."""


@dataclass
class ModelConfig:
    """``_target_`` is called with these keys plus ``num_classes`` (from the data) and ``device``."""

    _target_: str = "defcon_exp.models.cifar_resnet50"
    attention: str = "none"
    kernel_size: Any = "adaptive"  # int | "adaptive" | "paper" | [k1, k2, k3, k4]
    attention_kwargs: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    stem: str = "cifar"  # "cifar" (ours) | "released" (the authors' code, docs/released_code.md)
    drop_path_rate: float = 0.0  # stochastic depth, last block's rate (linear in depth)
    # aten | triton | auto: the attention's pooled-vector maths and the block tail on CUDA as
    # ATen ops (default) or fused Triton kernels; auto = Triton on CUDA when it imports
    # (defcon_exp/ops/kernel_paths.py). The CPU always runs ATen.
    kernels: str = "aten"
    arch: str = "cifar_resnet50"  # cifar_resnet50 | resnet{18,34,50,101,152}_imagenet (arch=...)
    init_from: Optional[str] = None  # noqa: UP045  (a torchvision state dict; models/pretrained.py)


@dataclass
class OptimConfig:
    """Arguments of :func:`defcon_exp.engine.optim.build_optimizer` (``name``: sgd | adamw)."""

    _target_: str = "defcon_exp.engine.optim.build_optimizer"
    name: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # noqa: UP006
    eps: float = 1e-8
    exclude_norm_and_bias: bool = False


@dataclass
class PlateauConfig:
    """Reduce-on-plateau rule (used when ``scheduler.name == plateau``)."""

    monitor: str = (
        "val/loss"  # val|train / loss|top1|top5 (val falls back to train without a val split)
    )
    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    min_lr: float = 0.0


@dataclass
class SchedulerConfig:
    """Arguments of :func:`defcon_exp.engine.schedulers.build_schedulers` (epochs are epochs)."""

    _target_: str = "defcon_exp.engine.schedulers.build_schedulers"
    name: str = "constant"
    interval: str = "step"  # step: update the lr every iteration; epoch: once per epoch
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    milestones: List[int] = field(default_factory=list)  # noqa: UP006
    gamma: float = 0.1
    T_max: Optional[float] = None  # noqa: UP045
    T_0: int = 50
    T_mult: int = 2
    eta_min: float = 0.0
    plateau: PlateauConfig = field(default_factory=PlateauConfig)


@dataclass
class TrainerConfig:
    """Loop settings."""

    epochs: int = 200
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "32"  # 32 | bf16 | 16-mixed (also 32-true, bf16-mixed, 16)
    channels_last: bool = False  # model and input batches in torch.channels_last
    compile: Any = False  # false | true | default | reduce-overhead | max-autotune
    grad_clip_norm: Optional[float] = None  # noqa: UP045
    log_every_n_steps: int = 50
    checkpoint_every_n_steps: int = 0  # also write last.pt every n steps inside epochs; 0 = off
    keep_checkpoints: str = "auto"  # all | last_slim | best | auto (conf/trainer/default.yaml)
    histograms_every_n_epochs: int = 1  # TensorBoard attention histograms; 0 = off
    histogram_images: int = 64  # probe images (first of the val/test split) for them
    progress: bool = True
    deterministic: bool = False
    sync_batchnorm: Any = "auto"  # torchrun: true | false | auto (sync below 16 images/process)
    num_threads: Optional[int] = None  # noqa: UP045  (torch CPU threads; null = torch's default)
    label_smoothing: float = 0.0  # nn.CrossEntropyLoss(label_smoothing=) of the training loss
    accumulate_grad_batches: int = 1  # micro-batches per optimiser step
    limit_train_batches: Any = 1.0  # int: batches; float in (0, 1]: a fraction (data/limits.py)
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    mix: MixConfig = field(default_factory=MixConfig)  # Mixup / CutMix (docs/regularisation.md)
    ema: EMAConfig = field(default_factory=EMAConfig)  # weight EMA (docs/regularisation.md)


@dataclass
class Config:
    """The whole run. ``resume``: a run dir or a checkpoint to continue (in its own run dir);
    ``run_dir``: where to write when not under Hydra (null = Hydra's run dir, or a fresh
    ``outputs/DATE/TIME`` when ``train()`` is called directly)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    resume: Optional[str] = None  # noqa: UP045  (a run dir, a checkpoint, or "auto")
    run_dir: Optional[str] = None  # noqa: UP045
    tags: List[str] = field(default_factory=list)  # noqa: UP006
    search: SearchConfig = field(default_factory=SearchConfig)  # hparams search (docs/search.md)


def register_configs() -> None:
    """Register the schema and the resolvers (idempotent)."""
    ConfigStore.instance().store(name="defcon_schema", node=Config)
    OmegaConf.register_new_resolver("defcon_run_dir", hydra_run_dir, replace=True)
    OmegaConf.register_new_resolver("defcon_hydra_subdir", hydra_output_subdir, replace=True)
    OmegaConf.register_new_resolver("defcon_lr_per_256", lr_per_256, replace=True)


def lr_per_256(lr_per_256_images: float, global_batch: int) -> float:
    """``optim.lr: ${defcon_lr_per_256:0.1,${data.batch_size}}``: the linear scaling rule
    (Goyal et al. 2017), ``lr = base * global batch / 256``; ``data.batch_size`` is the
    global batch, so the rate is the same on 1 GPU or 64."""
    return float(lr_per_256_images) * int(global_batch) / 256


register_configs()
