"""The value rules of a composed config: :func:`validate_config` checks the *values*
(``optim.lr > 0``, ``trainer.epochs >= 1``...) and raises
:class:`~defcon_exp.config.ConfigError` naming the key, the value and the rule, before
anything is built. The schema they check is :mod:`defcon_exp.config`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from defcon_exp.analysis.objectives import check_objectives
from defcon_exp.config import Config, ConfigError
from defcon_exp.data.limits import check_limits
from defcon_exp.engine.early_stopping import check_early_stopping
from defcon_exp.engine.keep import KEEP_POLICIES
from defcon_exp.keys import flat_items
from defcon_exp.regularisation import validate_regularisation
from defcon_exp.safety import check_no_code

# validate_config imports the name lists it checks against (they import torch) only after
# the plain value rules passed.

__all__ = ["MAX_SEED", "as_config_error", "validate_config"]

T = TypeVar("T")


def as_config_error(check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``, its ``ValueError`` (whose message names key, value and rule) raised
    as a one-line :class:`~defcon_exp.config.ConfigError`."""
    try:
        return check(*args)
    except ValueError as err:
        raise ConfigError(str(err)) from None


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
    for key, value in flat_items(container, index_lists=True):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value!r} is invalid: must be a finite number")


def _check_targets(cfg: Any) -> None:
    """The live config obeys the same call-key allow-list as a stored one."""
    # Hydra's own node names its launcher/sweeper classes: those come from the installed
    # plugins and the command line, never from a stored file.
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    if isinstance(plain, dict):
        plain = {k: v for k, v in plain.items() if k != "hydra"}
    as_config_error(check_no_code, plain, "the config")


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _metric_names() -> tuple[str, ...]:
    from defcon_exp.engine.epoch_metrics import METRIC_NAMES

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
        get("trainer.keep_checkpoints") in KEEP_POLICIES,
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
    from defcon_exp.data.policies import check_policies
    from defcon_exp.data.registry import check_set_keys
    from defcon_exp.engine.optim import OPTIMIZER_NAMES
    from defcon_exp.engine.precision import parse_precision
    from defcon_exp.engine.schedulers import SCHEDULE_NAMES
    from defcon_exp.engine.speedups import parse_compile
    from defcon_exp.models.registry import ARCHS
    from defcon_exp.models.resnet import STEMS
    from defcon_exp.ops.kernel_paths import KERNELS
    from defcon_exp.ops.triton_launch import triton_available

    as_config_error(check_set_keys, get("data"))  # a key the set ignores (train_size on CIFAR)
    as_config_error(check_policies, get("data"))  # the augmentation policies and the loader
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
        as_config_error(parse, get(key))
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
    as_config_error(
        check_objectives, OmegaConf.select(cfg, "search.objective", default="val/top1_final")
    )
    rule(
        "data.val_size",
        OmegaConf.select(cfg, "search.trial_number") is None or cfg.data.val_size > 0,
        "a search trial is scored on the validation split, never the test set; hold one out, "
        "e.g. data.val_size=5000",
    )
