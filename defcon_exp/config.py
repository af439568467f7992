"""Structured configs (Hydra ConfigStore schemas), their value rules, and the run-dir resolvers.

Importing this module registers:

* ``defcon_schema`` in Hydra's ConfigStore — the typed top-level schema that
  ``conf/config.yaml`` lists first in its defaults, so every group file is merged onto
  typed dataclasses (a wrong type or an unknown key fails at composition);
* the OmegaConf resolvers ``defcon_run_dir`` / ``defcon_hydra_subdir`` used by
  ``conf/hydra/default.yaml`` to send ``resume=...`` runs back to their original run dir.

:func:`validate_config` checks the *values* (``optim.lr > 0``, ``trainer.epochs >= 1``...)
and raises :class:`ConfigError` naming the key, the value and the rule, before anything
is built.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from defcon_exp.analysis.objectives import SearchConfig, check_objectives
from defcon_exp.data.config import DataConfig
from defcon_exp.data.limits import check_limits
from defcon_exp.engine.early_stopping import EarlyStoppingConfig, check_early_stopping
from defcon_exp.engine.run_dir import hydra_output_subdir, hydra_run_dir
from defcon_exp.regularisation import EMAConfig, MixConfig, validate_regularisation
from defcon_exp.safety import UnsafeConfigError, check_no_code

# The schema and the resolvers import no torch: ``defcon-train --help`` and command-line
# checks answer in about a second. validate_config imports the name lists it checks against.

__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "OptimConfig",
    "PlateauConfig",
    "SchedulerConfig",
    "TrainerConfig",
    "register_configs",
    "validate_config",
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

#: the largest seed every RNG we seed accepts (numpy's legacy seeding takes 32 bits)
MAX_SEED = 2**32 - 1


def _check_numbers_finite(cfg: Any) -> None:
    """Refuse NaN and +-Inf in every numeric key (``optim.lr=inf``, ``1e400`` parsed as inf)."""
    if isinstance(cfg, DictConfig):  # hydra's own node (a sweep's job fields) is not ours
        container = {
            str(k): OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items_ex(resolve=True)
            if k != "hydra"
        }
    else:
        container = cfg
    for key, value in flat_numbers(container):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value!r} is invalid: must be a finite number")


def flat_numbers(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf, lists indexed (``optim.betas.0``)."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, (list, tuple)):
        items = list(enumerate(node))
    else:
        return [(prefix[:-1], node)]
    out: list[tuple[str, Any]] = []
    for key, value in items:
        out += flat_numbers(value, f"{prefix}{key}.")
    return out


def _check_targets(cfg: Any) -> None:
    """The live config obeys the same call-key allow-list as a stored one."""
    # Hydra's own node names its launcher/sweeper classes: those come from the installed
    # plugins and the command line, never from a stored file.
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    if isinstance(plain, dict):
        plain = {k: v for k, v in plain.items() if k != "hydra"}
    try:
        check_no_code(plain, "the config")
    except UnsafeConfigError as err:
        raise ConfigError(str(err)) from None


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _metric_names() -> tuple[str, ...]:
    from defcon_exp.engine.metrics import METRIC_NAMES  # imports torch: only when validating

    return METRIC_NAMES


def _monitor_choices() -> list[str]:
    return [f"{split}/{name}" for split in ("val", "train") for name in _metric_names()]


def validate_config(cfg: DictConfig | Config) -> None:
    """Check value rules of a composed config; raise :class:`ConfigError` on the first break."""
    get = lambda key: OmegaConf.select(cfg, key)  # noqa: E731

    def rule(key: str, ok: bool, text: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={get(key)!r} is invalid: {text}")

    _check_numbers_finite(cfg)
    _check_targets(cfg)
    _validate_optim(get, rule)
    _validate_trainer(get, rule)
    _validate_scheduler(get, rule)
    validate_regularisation(get, rule)
    _validate_search(cfg, rule)
    _validate_names(get, rule)


Rule = Any  # (key, ok, text) -> None: raises ConfigError naming key and value when not ok


def _validate_optim(get: Any, rule: Rule) -> None:
    """Seeds and the optimiser's numbers."""
    for key in ("seed", "data.data_seed"):
        rule(key, 0 <= get(key) <= MAX_SEED, f"must be an int in [0, {MAX_SEED}] (2**32 - 1)")
    rule("optim.lr", get("optim.lr") > 0, "must be > 0")
    rule("optim.eps", get("optim.eps") > 0, "must be > 0 (e.g. 1e-8)")
    betas = list(get("optim.betas"))
    rule(
        "optim.betas",
        len(betas) == 2 and all(0 <= b < 1 for b in betas),
        "must be two numbers in [0, 1), e.g. [0.9, 0.999]",
    )
    rule("optim.weight_decay", get("optim.weight_decay") >= 0, "must be >= 0")
    rule("optim.momentum", 0 <= get("optim.momentum") < 1, "must be in [0, 1)")


def _validate_trainer(get: Any, rule: Rule) -> None:
    """The trainer's numbers and choices, the kernel size, batch sizes."""
    rule("trainer.epochs", get("trainer.epochs") >= 1, "must be >= 1")
    rule(
        "trainer.device",
        bool(_DEVICE.match(str(get("trainer.device")))),
        "must be auto, cpu, cuda or cuda:N",
    )
    threads = get("trainer.num_threads")
    rule(
        "trainer.num_threads",
        threads is None or threads >= 1,
        "must be null (torch's default) or >= 1 (CPU threads of this run)",
    )
    rule("trainer.log_every_n_steps", get("trainer.log_every_n_steps") >= 1, "must be >= 1")
    rule(
        "trainer.sync_batchnorm",
        isinstance(get("trainer.sync_batchnorm"), bool) or get("trainer.sync_batchnorm") == "auto",
        "must be true, false or auto (synchronise below 16 images per process)",
    )
    rule(
        "trainer.checkpoint_every_n_steps",
        get("trainer.checkpoint_every_n_steps") >= 0,
        "must be >= 0 (0 = only at epoch ends)",
    )
    rule(
        "trainer.keep_checkpoints",
        get("trainer.keep_checkpoints") in ("auto", "all", "last_slim", "best"),
        "must be auto, all, last_slim or best (what a finished run keeps)",
    )
    rule(
        "trainer.histograms_every_n_epochs",
        get("trainer.histograms_every_n_epochs") >= 0,
        "must be >= 0 (0 = no attention histograms)",
    )
    rule("trainer.histogram_images", get("trainer.histogram_images") >= 1, "must be >= 1")
    kernel = get("model.kernel_size")
    kernels = list(kernel) if isinstance(kernel, (list, ListConfig)) else [kernel]
    rule(
        "model.kernel_size",
        kernel in ("adaptive", "paper")
        or (
            len(kernels) in (1, 4)
            and all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 == 1
                for k in kernels
            )
        ),
        "must be 'adaptive', 'paper', an odd positive int or a list of 4 odd positive ints",
    )
    check_limits(get, rule)
    check_early_stopping(get, rule)
    clip = get("trainer.grad_clip_norm")
    rule("trainer.grad_clip_norm", clip is None or clip > 0, "must be null or > 0")
    for key in ("data.batch_size", "data.eval_batch_size"):
        if get(key) is not None:
            rule(key, get(key) >= 1, "must be >= 1")


def _validate_scheduler(get: Any, rule: Rule) -> None:
    """The schedule's numbers against the epochs and the lr; the plateau rule."""
    epochs = get("trainer.epochs")
    rule(
        "scheduler.interval",
        get("scheduler.interval") in ("step", "epoch"),
        "must be 'step' or 'epoch'",
    )
    rule(
        "scheduler.warmup_epochs",
        0 <= get("scheduler.warmup_epochs") < epochs,
        f"must be >= 0 and < trainer.epochs={epochs}",
    )
    rule(
        "scheduler.warmup_start_factor",
        0 <= get("scheduler.warmup_start_factor") <= 1,
        "must be in [0, 1]",
    )
    milestones = list(get("scheduler.milestones") or [])
    rule(
        "scheduler.milestones",
        all(m > 0 for m in milestones) and milestones == sorted(set(milestones)),
        "must be positive and strictly increasing",
    )
    rule("scheduler.gamma", 0 < get("scheduler.gamma") <= 1, "must be in (0, 1]")
    t_max = get("scheduler.T_max")
    rule("scheduler.T_max", t_max is None or t_max > 0, "must be null or > 0")
    rule("scheduler.T_0", get("scheduler.T_0") >= 1, "must be >= 1")
    rule("scheduler.T_mult", get("scheduler.T_mult") >= 1, "must be >= 1")
    rule(
        "scheduler.eta_min",
        0 <= get("scheduler.eta_min") < get("optim.lr"),
        "must be >= 0 and < optim.lr",
    )
    rule(
        "scheduler.plateau.monitor",
        str(get("scheduler.plateau.monitor")) in _monitor_choices(),
        f"must be val|train / {'|'.join(_metric_names())}, e.g. val/loss",
    )
    rule(
        "scheduler.plateau.mode",
        get("scheduler.plateau.mode") in ("min", "max"),
        "must be 'min' or 'max'",
    )
    rule("scheduler.plateau.factor", 0 < get("scheduler.plateau.factor") < 1, "must be in (0, 1)")
    rule("scheduler.plateau.patience", get("scheduler.plateau.patience") >= 0, "must be >= 0")
    rule("scheduler.plateau.min_lr", get("scheduler.plateau.min_lr") >= 0, "must be >= 0")


def _validate_names(get: Any, rule: Any) -> None:
    """Rules against the registered names (attention modules, optimisers, schedules...):
    their lists import torch, so they run after the plain value rules (a bad number is
    refused before torch loads)."""
    from defcon_exp.attention.registry import list_attentions
    from defcon_exp.data.registry import check_set_keys
    from defcon_exp.engine.optim import OPTIMIZER_NAMES
    from defcon_exp.engine.precision import parse_precision
    from defcon_exp.engine.schedulers import SCHEDULE_NAMES
    from defcon_exp.engine.speedups import parse_compile
    from defcon_exp.models.registry import ARCHS
    from defcon_exp.models.resnet import STEMS
    from defcon_exp.ops.kernel_paths import KERNELS
    from defcon_exp.ops.triton_launch import triton_available

    try:  # a key the chosen data set ignores (data.train_size on CIFAR)
        check_set_keys(get("data"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    attention = get("model.attention")
    rule(
        "model.attention",
        attention in list_attentions(),
        f"must be one of {list_attentions()} (or pick a model=... option)",
    )
    rule(
        "optim.name",
        get("optim.name") in OPTIMIZER_NAMES,
        f"must be one of {list(OPTIMIZER_NAMES)}",
    )
    for key, parse in (("trainer.precision", parse_precision), ("trainer.compile", parse_compile)):
        try:
            parse(get(key))
        except ValueError as err:  # the parser's message names key, value and rule
            raise ConfigError(str(err)) from None
    rule("model.stem", get("model.stem") in STEMS, f"must be one of {list(STEMS)}")
    kernels = get("model.kernels")
    rule("model.kernels", kernels in KERNELS, f"must be one of {list(KERNELS)}")
    rule(
        "model.kernels",
        kernels != "triton" or triton_available(),
        "needs Triton installed (pip install triton); use 'aten' or 'auto'",
    )
    rule("model.arch", get("model.arch") in ARCHS, f"must be one of {list(ARCHS)}")
    init_from = get("model.init_from")
    rule("model.init_from", init_from is None or os.path.isfile(init_from), "no such file")
    rule(
        "scheduler.name",
        get("scheduler.name") in SCHEDULE_NAMES,
        f"must be one of {list(SCHEDULE_NAMES)}",
    )


def _validate_search(cfg: DictConfig | Config, rule: Any) -> None:
    """``search.objective`` names validation metrics only; a sweeper trial needs a val split."""
    try:
        check_objectives(OmegaConf.select(cfg, "search.objective", default="val/top1_final"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    rule(
        "data.val_size",
        OmegaConf.select(cfg, "search.trial_number") is None or cfg.data.val_size > 0,
        "a search trial is scored on the validation split, never the test set; hold one out, "
        "e.g. data.val_size=5000",
    )
