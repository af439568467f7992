"""Structured configs (Hydra ConfigStore schemas) and the run-dir resolvers.

Importing this module registers:

* ``defcon_schema`` in Hydra's ConfigStore — the typed top-level schema that
  ``conf/config.yaml`` lists first in its defaults, so every group file is merged onto
  typed dataclasses (a wrong type or an unknown key fails at composition);
* the OmegaConf resolver ``defcon_run_dir`` used by ``conf/hydra/default.yaml`` to send
  ``resume=...`` runs back to their original run dir.

The *values* (``optim.lr > 0``, ``trainer.epochs >= 1``...) are checked by
:func:`defcon_exp.config_rules.validate_config`, which raises :class:`ConfigError` naming
the key, the value and the rule, before anything is built.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional  # noqa: UP035 (OmegaConf needs typing generics)

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from defcon_exp.analysis.objectives import SearchConfig
from defcon_exp.data.config import DataConfig
from defcon_exp.engine.fit_settings import TrainerConfig
from defcon_exp.run_dir import hydra_run_dir

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
    "field_help",
    "register_configs",
    "schema_help",
]


class ConfigError(ValueError):
    """A config value breaks a rule; the message names key, value and rule."""


@dataclass
class ModelConfig:
    """``_target_`` is called with these keys plus ``num_classes`` (from the data) and ``device``."""

    _target_: str = "defcon_exp.models.cifar_resnet50"
    """the model builder (only the allow-listed defcon_exp builders run)"""
    attention: str = "none"
    """attention module in every bottleneck: none, se, eca, defcon, cbam..."""
    kernel_size: Any = "adaptive"
    """1D kernel of eca/defcon*: paper (3,5,5,7), adaptive (ECA formula), an odd int or 4 odd
    ints

    int | "adaptive" | "paper" | [k1, k2, k3, k4]."""
    attention_kwargs: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    """extra arguments of the attention module (+model.attention_kwargs.x=...)"""
    stem: str = "cifar"
    """cifar (3x3 conv, ours) or released (the authors' code, docs/released_code.md)"""
    drop_path_rate: float = 0.0
    """stochastic depth of the last bottleneck (linear in depth); 0 = off"""
    kernels: str = "aten"
    """aten | triton | auto: attention maths and block tail on CUDA as ATen ops or fused Triton
    kernels (the CPU always runs ATen)

    The attention's pooled-vector maths and the block tail; auto = Triton on CUDA when it
    imports (defcon_exp/ops/kernel_paths.py)."""
    arch: str = "cifar_resnet50"
    """the network (arch=...): cifar_resnet50 | resnet{18,34,50,101,152}_imagenet"""
    init_from: Optional[str] = None  # noqa: UP045
    """a torchvision state dict to start from (weights_only; the attention keeps its own init)

    See models/pretrained.py."""


@dataclass
class OptimConfig:
    """Arguments of :func:`defcon_exp.engine.optim.build_optimizer` (``name``: sgd | adamw)."""

    _target_: str = "defcon_exp.engine.optim.build_optimizer"
    """the optimiser builder (fixed)"""
    name: str = "sgd"
    """sgd | adamw"""
    lr: float = 0.1
    """peak learning rate"""
    weight_decay: float = 5e-4
    """weight decay (L2 for sgd, decoupled for adamw)"""
    momentum: float = 0.9
    """sgd momentum"""
    nesterov: bool = False
    """sgd Nesterov momentum"""
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # noqa: UP006
    """adamw betas"""
    eps: float = 1e-8
    """adamw epsilon"""
    exclude_norm_and_bias: bool = False
    """no weight decay on BatchNorm and bias parameters"""


@dataclass
class PlateauConfig:
    """Reduce-on-plateau rule (used when ``scheduler.name == plateau``)."""

    monitor: str = "val/loss"
    """plateau: the metric watched, val|train / loss|top1|top5

    val falls back to train without a val split."""
    mode: str = "min"
    """plateau: min or max"""
    factor: float = 0.1
    """plateau: lr factor when it stalls"""
    patience: int = 10
    """plateau: epochs without improvement before reducing"""
    threshold: float = 1e-4
    """plateau: smallest change counted as improvement"""
    cooldown: int = 0
    """plateau: epochs to wait after a reduction"""
    min_lr: float = 0.0
    """plateau: the lowest lr"""


@dataclass
class SchedulerConfig:
    """Arguments of :func:`defcon_exp.engine.schedulers.build_schedulers` (epochs are epochs)."""

    _target_: str = "defcon_exp.engine.schedulers.build_schedulers"
    """the schedule builder (fixed)"""
    name: str = "constant"
    """constant | step | cosine | warm_restarts | plateau"""
    interval: str = "step"
    """step: update the lr every iteration | epoch: once per epoch"""
    warmup_epochs: float = 0.0
    """linear warm-up length in epochs (fractions allowed)"""
    warmup_start_factor: float = 0.1
    """warm-up starts at lr x this"""
    milestones: List[int] = field(default_factory=list)  # noqa: UP006
    """step: epochs where lr *= gamma"""
    gamma: float = 0.1
    """step: the lr factor at each milestone"""
    T_max: Optional[float] = None  # noqa: UP045
    """cosine: period in epochs; null = the epochs after warm-up"""
    T_0: int = 50
    """warm_restarts: first period in epochs"""
    T_mult: int = 2
    """warm_restarts: period growth factor"""
    eta_min: float = 0.0
    """cosine/warm_restarts: the lowest lr"""
    plateau: PlateauConfig = field(default_factory=PlateauConfig)


@dataclass
class Config:
    """The whole run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    """the run's seed (init, shuffling, augmentation)"""
    resume: Optional[str] = None  # noqa: UP045
    """a run dir or checkpoint to continue in its own dir; auto: resume or skip this job's dir"""
    run_dir: Optional[str] = None  # noqa: UP045
    """where train() writes outside Hydra; null = Hydra's run dir

    A fresh ``outputs/DATE/TIME`` when ``train()`` is called directly."""
    tags: List[str] = field(default_factory=list)  # noqa: UP006
    """free labels stored with the run"""
    search: SearchConfig = field(default_factory=SearchConfig)  # hparams search (docs/search.md)


def field_help(cls: type) -> dict[str, str]:
    """Each field of the dataclass ``cls`` -> its help: the first paragraph of the attribute
    docstring written right after the field (read from the source with :mod:`ast`), on one
    line; ``""`` for a field without one."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(cls)))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef)).body
    docs: dict[str, str] = {}
    for stmt, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            text = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                text = " ".join(inspect.cleandoc(str(after.value.value)).split("\n\n")[0].split())
            docs[stmt.target.id] = text
    return {f.name: docs.get(f.name, "") for f in fields(cls)}


def schema_help(cls: type = Config, prefix: str = "") -> dict[str, str]:
    """Every leaf key of the schema (``trainer.ema.decay``; a dict field such as
    ``model.attention_kwargs`` is a leaf) -> its help text (:func:`field_help`)."""
    helps: dict[str, str] = {}
    own = field_help(cls)
    for f in fields(cls):
        if is_dataclass(f.default_factory):
            helps.update(schema_help(f.default_factory, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            helps[f"{prefix}{f.name}"] = own[f.name]
    return helps


def register_configs() -> None:
    """Register the schema and the resolvers (idempotent)."""
    ConfigStore.instance().store(name="defcon_schema", node=Config)
    OmegaConf.register_new_resolver("defcon_run_dir", hydra_run_dir, replace=True)
    OmegaConf.register_new_resolver("defcon_lr_per_256", lr_per_256, replace=True)


def lr_per_256(lr_per_256_images: float, global_batch: int) -> float:
    """``optim.lr: ${defcon_lr_per_256:0.1,${data.batch_size}}``: the linear scaling rule
    (Goyal et al. 2017), ``lr = base * global batch / 256``; ``data.batch_size`` is the
    global batch, so the rate is the same on 1 GPU or 64."""
    return float(lr_per_256_images) * int(global_batch) / 256


register_configs()
