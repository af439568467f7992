"""``defcon-train``: compose the Hydra config, build data/model/optimiser/schedule, run the engine.

``main`` is the thin ``@hydra.main`` entry point; everything else is plain, importable code:
``train(cfg)`` is what tests call with ``hydra.compose()``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.resources
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from defcon_exp.config import Config, ConfigError, validate_config
from defcon_exp.data import DatasetNotFoundError, build_data
from defcon_exp.engine import distributed
from defcon_exp.engine.checkpoint import find_checkpoint, load_checkpoint, load_model_state
from defcon_exp.engine.fit import (
    FitSettings,
    Loaders,
    TrainingInterrupted,
    count_parameters,
    fit,
)
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.precision import (
    check_precision_supported,
    parse_precision,
    precision_from_amp,
)
from defcon_exp.engine.run_dir import is_used_run_dir, resume_run_dir, unique_run_dir
from defcon_exp.engine.seed import resolve_device, seed_everything
from defcon_exp.engine.speedups import compile_model, parse_compile

log = logging.getLogger("defcon_exp.train")

#: Errors the user can fix; the CLI prints their message without a traceback and exits 1.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DatasetNotFoundError,
    FileNotFoundError,
    NonFiniteLossError,
    ValueError,
    distributed.DistributedError,
)


class SweepJobError(CompactHydraException):
    """One job of a sweep (``-m``) failed. Raised instead of ``sys.exit`` so that Hydra marks
    just that job as failed and the launcher runs the others (a ``SystemExit`` in a joblib
    worker would abort the whole sweep); once every job has ended, Hydra prints the first
    failed job's message (no traceback) and exits 1. Picklable: it crosses process borders."""


#: keys whose change would load the checkpoint into another network: resuming refuses them
RESUME_FORBIDDEN_PREFIXES = ("model.", "data.name", "data.num_classes")
#: keys fixing the data order: a mid-epoch checkpoint can only resume with them unchanged
MID_EPOCH_FIXED_PREFIXES = ("data.", "seed")
CONFIG_GROUPS = ("model", "data", "optim", "scheduler", "trainer", "experiment")
#: keys that may differ between a checkpoint's config and the resumed one without a warning
RESUME_NEUTRAL = {
    "resume",
    "run_dir",
    "trainer.progress",
    "trainer.device",
    "trainer.epochs",
    "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps",
    "trainer.num_threads",
    "trainer.histograms_every_n_epochs",
    "trainer.histogram_images",
    "trainer.channels_last",
    "trainer.compile",
    "data.num_workers",
    "data.pin_memory",
    "data.root",
}


def model_name(model_cfg: Any) -> str:
    """A readable model name: the attention (``defcon``...) or ``resnet50`` for none."""
    attention = (
        OmegaConf.select(model_cfg, "attention", default="none")
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg).get("attention", "none")
    )
    return "resnet50" if attention in (None, "none") else str(attention)


def build_model(model_cfg: Any, num_classes: int, device: torch.device) -> nn.Module:
    """Instantiate ``model_cfg`` (``_target_`` + kwargs) with ``num_classes`` and ``device``."""
    return instantiate(model_cfg, num_classes=num_classes, device=device, _convert_="all")


def schema_config(container: dict[str, Any]) -> DictConfig:
    """A plain-data config (e.g. from a checkpoint) merged onto the typed schema; retired
    keys are upgraded first (:func:`upgrade_config`)."""
    return OmegaConf.merge(OmegaConf.structured(Config), upgrade_config(container))


def upgrade_config(container: dict[str, Any], warn: bool = True) -> dict[str, Any]:
    """A copy of a stored config with retired keys replaced (the input is not modified).

    ``trainer.amp`` (before ``trainer.precision``): ``false`` -> ``precision: "32"``; ``true``
    -> what it meant on the run's ``trainer.device`` (``"16-mixed"`` on CUDA, ``"bf16"`` on the
    CPU, see :func:`~defcon_exp.engine.precision.precision_from_amp`), with a deprecation
    warning when ``warn``. An explicit ``trainer.precision`` next to it wins.
    """
    trainer = container.get("trainer")
    if not isinstance(trainer, dict) or "amp" not in trainer:
        return container
    container = copy.deepcopy(container)
    trainer = container["trainer"]
    amp = bool(trainer.pop("amp"))
    spec = str(trainer.get("device", "auto"))
    cuda = spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available())
    precision = precision_from_amp(amp, torch.device("cuda" if cuda else "cpu"))
    if "precision" not in trainer:
        trainer["precision"] = precision
    if warn and amp:
        log.warning(
            "the config uses the retired trainer.amp=true: running it as trainer.precision=%r "
            "(what amp meant on trainer.device=%s); pass trainer.precision=... to choose",
            trainer["precision"],
            spec,
        )
    return container


def flat_items(container: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as values)."""
    if isinstance(container, dict):
        out: dict[str, Any] = {}
        for key, value in container.items():
            out.update(flat_items(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: container}


def pick_run_dir(
    cfg: DictConfig, run_dir: str | Path | None, restart_incomplete: bool = False
) -> tuple[Path, Path | None]:
    """Decide where this run writes and which checkpoint (if any) it resumes from.

    Priority: ``resume`` (the original run dir, always) > ``run_dir`` argument >
    ``cfg.run_dir`` > Hydra's run dir > a fresh ``outputs/DATE/TIME_us``. A fresh run never
    writes into a dir that already holds a run, except with ``restart_incomplete``
    (``resume=auto``) when that run never wrote ``checkpoints/last.pt``.
    """
    if cfg.resume:
        ckpt = find_checkpoint(cfg.resume)
        return resume_run_dir(ckpt), ckpt
    target = run_dir or cfg.run_dir
    if target is None and HydraConfig.initialized():
        target = HydraConfig.get().runtime.output_dir
    path = Path(target) if target is not None else unique_run_dir()
    if is_used_run_dir(path) and not (
        restart_incomplete and not (path / "checkpoints" / "last.pt").exists()
    ):
        raise ConfigError(
            f"run_dir={str(path)!r} is invalid: it already holds a run (checkpoints/metrics); "
            f"continue it with resume={path} or choose a new directory"
        )
    check_writable(path)
    return path, None


def check_writable(path: Path) -> None:
    """Create ``path`` and write a probe file in it, or raise :class:`ConfigError`."""
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"run_dir={str(path)!r} is invalid: the output folder must be writable "
            f"({err.strerror or err})"
        ) from None


def train(
    cfg: DictConfig, run_dir: str | Path | None = None, restart_incomplete: bool = False
) -> dict[str, Any]:
    """Run one training job described by ``cfg`` (composed ``conf/config.yaml``).

    Returns the summary (also ``<run_dir>/summary.json``): ``test`` top1/top5/loss,
    ``best_val`` (or ``best_on_test``), ``num_params``, ``wall_time_s``, ``images_per_s``...

    Raises:
        ConfigError / ValueError: a config value breaks a rule (named in the message).
        DatasetNotFoundError: CIFAR is missing and cannot be downloaded.
        NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).
    """
    validate_config(cfg)
    world = distributed.world_size()
    if world > 1 and cfg.data.batch_size % world:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} is invalid: it is the global batch and must "
            f"be divisible by the {world} processes (each trains on batch_size / {world}); use "
            f"e.g. data.batch_size={max(1, cfg.data.batch_size // world) * world}"
        )
    stash: dict[str, Any] = {}

    def locate() -> tuple[str | None, Path, Path | None, dict[str, Any] | None]:
        """(resume, run dir, checkpoint, finished summary): decided once, by rank 0."""
        nonlocal cfg, restart_incomplete
        if cfg.resume == "auto":
            target = run_dir or cfg.run_dir
            if target is None and HydraConfig.initialized():
                target = HydraConfig.get().runtime.output_dir
            if target is None:
                raise ConfigError("resume='auto' is invalid here: it needs run_dir (or Hydra's run dir)")
            cfg, finished = resolve_auto_resume(cfg, Path(target))
            if finished is not None:
                return cfg.resume, Path(target), None, finished
            restart_incomplete = True
        if not distributed.is_active():
            stash["device"] = resolve_device(cfg.trainer.device)
        out_dir, ckpt_path = pick_run_dir(cfg, run_dir, restart_incomplete)
        if ckpt_path is not None:
            resume_state = stash["resume_state"] = load_checkpoint(ckpt_path)
            if "optimizer" not in resume_state:
                raise ConfigError(
                    f"resume={cfg.resume!r} is invalid: {ckpt_path.name} holds weights only "
                    "(best.pt is for evaluation); resume from the run dir or last.pt"
                )
            _check_config_changes(
                resume_state["config"], cfg, ckpt_path, resume_state.get("position") is not None
            )
            summary_path = out_dir / "summary.json"
            if (
                resume_state.get("position") is None
                and int(resume_state["epoch"]) >= cfg.trainer.epochs
                and summary_path.is_file()
            ):
                message = (
                    f"{out_dir} already finished ({resume_state['epoch']} of trainer.epochs="
                    f"{cfg.trainer.epochs} epochs, summary.json written): nothing to do; pass a "
                    "larger trainer.epochs to train on"
                )
                log.info("%s", message)
                print(f"defcon-train: {message}", file=sys.stderr)
                return cfg.resume, out_dir, ckpt_path, json.loads(summary_path.read_text())
        return cfg.resume, out_dir, ckpt_path, None

    # rank 0 alone reads and creates the run dir; the others get its decision (or its error)
    resume, out_dir, ckpt_path, finished = distributed.share_from_main(locate)
    if finished is not None:
        return finished
    cfg.resume = resume
    if "device" in stash:
        device = stash["device"]
    else:  # distributed: cuda:LOCAL_RANK or cpu
        device = distributed.device_for(cfg.trainer.device, distributed.local_rank())
    resume_state = stash.get("resume_state")
    if ckpt_path is not None and distributed.is_active():  # every rank loads it (to the CPU)
        resume_state = distributed.run_everywhere(
            lambda: stash.get("resume_state") or load_checkpoint(ckpt_path)
        )
    precision = parse_precision(cfg.trainer.precision)
    check_precision_supported(precision, device)

    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    name = model_name(cfg.model)
    log.info(
        "run dir: %s%s | host %s pid %d",
        out_dir,
        f" (resuming {ckpt_path})" if ckpt_path else "",
        socket.gethostname(),
        os.getpid(),
    )
    log.info(
        "model=%s kernel_size=%s | data=%s batch=%d | optim=%s lr=%g wd=%g | scheduler=%s | "
        "epochs=%d | seed=%d | device=%s threads=%d",
        name,
        cfg.model.get("kernel_size"),
        cfg.data.name,
        cfg.data.batch_size,
        cfg.optim.name,
        cfg.optim.lr,
        cfg.optim.weight_decay,
        cfg.scheduler.name,
        cfg.trainer.epochs,
        cfg.seed,
        device,
        torch.get_num_threads(),
    )
    log.debug("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))

    # rank 0 first (a CIFAR download happens once), then the others; errors stop every rank
    data = distributed.main_first(
        lambda: build_data(
            cfg.data,
            seed=cfg.seed,
            device=device,
            rank=distributed.rank(),
            world_size=distributed.world_size(),
        )
    )
    # every rank must run the same number of steps, or DDP would wait for the missing ones
    distributed.check_same(len(data.train), "training batches per epoch")
    log.info(
        "data %s: train %d images (%d batches) | val %s | test %d images | %d classes",
        cfg.data.name,
        data.train.num_samples,
        len(data.train),
        data.val.num_samples if data.val is not None else "none (data.val_size=0)",
        data.test.num_samples,
        data.num_classes,
    )
    per_process = cfg.data.batch_size // distributed.world_size()
    sync_bn = distributed.is_active() and distributed.use_sync_batchnorm(
        cfg.trainer.sync_batchnorm, per_process
    )
    if distributed.is_active():
        log.info(
            "distributed: %d processes, global batch %d = %d per process, sync_batchnorm=%s; "
            "rank 0 trains on %d images (%d batches) and evaluates %d test images per epoch",
            distributed.world_size(),
            cfg.data.batch_size,
            per_process,
            sync_bn,
            data.train.num_samples,
            len(data.train),
            data.test.num_samples,
        )

    def make_model() -> nn.Module:
        built = build_model(cfg.model, data.num_classes, device)
        if resume_state is not None:  # a clear error (mismatching keys) before anything runs
            load_model_state(built, resume_state["model"], ckpt_path or "checkpoint")
        return built

    model = distributed.run_everywhere(make_model)
    log.info("model %s: %s trainable parameters", name, f"{count_parameters(model):,}")
    if sync_bn:
        model = distributed.convert_sync_batchnorm(model, device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)  # same Parameter objects
    forward_model: nn.Module = model
    if distributed.is_active():
        forward_model = distributed.wrap_ddp(model, device)
    # compile last (it wraps DDP, as PyTorch recommends); checkpoints keep `model`'s keys
    compile_mode = parse_compile(cfg.trainer.compile)
    forward_model = compile_model(forward_model, compile_mode)
    log.info(
        "precision=%s channels_last=%s compile=%s",
        precision,
        cfg.trainer.channels_last,
        compile_mode or "off",
    )
    optimizer = instantiate(cfg.optim, model=model, _convert_="all")
    schedule, plateau = instantiate(
        cfg.scheduler,
        optimizer=optimizer,
        epochs=cfg.trainer.epochs,
        steps_per_epoch=len(data.train),
        _convert_="all",
    )
    container = OmegaConf.to_container(cfg, resolve=True)
    # the effective config of this (re)start; on resume it differs from Hydra's .hydra/ record
    if distributed.is_main():
        OmegaConf.save(OmegaConf.create(container), out_dir / "config.yaml")
    settings = FitSettings(
        epochs=cfg.trainer.epochs,
        precision=precision,
        channels_last=cfg.trainer.channels_last,
        grad_clip_norm=cfg.trainer.grad_clip_norm,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        checkpoint_every_n_steps=cfg.trainer.checkpoint_every_n_steps,
        histograms_every_n_epochs=cfg.trainer.histograms_every_n_epochs,
        histogram_images=cfg.trainer.histogram_images,
        progress=cfg.trainer.progress,
        model_name=name,
        config=container,
        hparams=_hparams(container, name),
    )
    loaders = Loaders(data.train, data.val, data.test, data.num_classes)
    return fit(
        model,
        optimizer,
        schedule,
        plateau,
        loaders,
        device,
        out_dir,
        settings,
        resume_state,
        forward_model=forward_model,
    )


def _hparams(container: dict[str, Any], name: str) -> dict[str, Any]:
    keys = (
        "optim.name",
        "optim.lr",
        "optim.weight_decay",
        "optim.momentum",
        "scheduler.name",
        "scheduler.warmup_epochs",
        "trainer.epochs",
        "trainer.precision",
        "trainer.channels_last",
        "trainer.compile",
        "data.name",
        "data.batch_size",
        "model.kernel_size",
        "seed",
    )
    flat = flat_items(container)
    return {"model": name, **{k: flat.get(k) for k in keys}}


def _check_config_changes(
    stored: dict[str, Any], cfg: DictConfig, ckpt: Path, mid_epoch: bool = False
) -> None:
    """Refuse changes that alter the network (``model.*``, data name/classes); warn on the
    rest (except :data:`RESUME_NEUTRAL` keys such as ``trainer.epochs``)."""
    before = flat_items(upgrade_config(stored, warn=False))
    after = flat_items(OmegaConf.to_container(cfg, resolve=True))
    changed = sorted(
        k
        for k in set(before) | set(after)
        if before.get(k) != after.get(k) and k not in RESUME_NEUTRAL
    )
    forbidden = [k for k in changed if k.startswith(RESUME_FORBIDDEN_PREFIXES)]
    if mid_epoch:
        order = [k for k in changed if k.startswith(MID_EPOCH_FIXED_PREFIXES) and k not in forbidden]
        if order:
            diffs = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in order)
            raise ConfigError(
                f"resume={str(cfg.resume)!r} is invalid: {ckpt} was saved inside an epoch and "
                f"skipping its finished batches needs the same data order ({diffs})"
            )
    if forbidden:
        diffs = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in forbidden)
        raise ConfigError(
            f"resume={str(cfg.resume)!r} is invalid: the config differs from {ckpt}'s in keys "
            f"that change the model ({diffs}); resume with the original values or start a new run"
        )
    for key in changed:
        log.warning("resume: %s changed from %r to %r", key, before.get(key), after.get(key))


def resume_config(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config a ``resume=`` invocation runs with: the checkpoint's own config plus the
    command line's value overrides (e.g. ``trainer.epochs=300``). Group choices cannot change."""
    stored = load_checkpoint(find_checkpoint(cfg.resume))["config"]
    resumed = schema_config(stored)
    resumed.resume = cfg.resume
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    for override in parsed:
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key in CONFIG_GROUPS:
            raise ConfigError(
                f"{key}={override.value()!r} is invalid when resuming: a run keeps its "
                "config groups; change values (e.g. trainer.epochs=...) or start a new run"
            )
        if override.is_delete():
            raise ConfigError(f"~{key} is invalid when resuming: keys cannot be deleted")
        OmegaConf.update(resumed, key, override.value(), merge=True, force_add=override.is_add())
    return resumed


_OPTION_LIST = re.compile(r"^[A-Za-z_][\w.-]*(,[A-Za-z_][\w.-]*)*$")


def group_options(group: str) -> list[str]:
    """The option names of a config group (``conf/<group>/*.yaml``)."""
    folder = importlib.resources.files("defcon_exp.conf") / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_group_overrides(args: Sequence[str]) -> None:
    """Refuse ``group=<not an option name>`` (``model=0``, ``model=[0]``) with the choices;
    Hydra would answer those with a raw traceback. Unknown *names* are left to Hydra, whose
    message lists the available options."""
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if key == "trainer.amp":
            raise ConfigError(
                f"trainer.amp={value!r} is invalid: trainer.amp was replaced by "
                "trainer.precision; use trainer.precision=bf16 (or 16-mixed: float16 + "
                "GradScaler, what amp=true did on CUDA; 32 for float32)"
            )
        if sep and key in CONFIG_GROUPS and not _OPTION_LIST.match(value):
            if key == "experiment" and value in ("null", ""):
                continue
            raise ConfigError(
                f"{key}={value!r} is invalid: a config group takes an option name (or a "
                f"comma-separated list under -m), one of {group_options(key)}"
            )


def check_output_dirs(args: Sequence[str]) -> None:
    """Refuse an explicit ``hydra.run.dir=``/``hydra.sweep.dir=`` (or, without one, the current
    folder) that cannot be created or written: Hydra would fail there with a traceback."""
    if any(a in ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info") for a in args):
        return  # nothing is written
    multirun = any(a in ("-m", "--multirun") for a in args)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [a.partition("=")[2] for a in args if a.startswith(f"{key}=")]
    target = Path(given[-1]) if given else Path.cwd() / ("multirun" if multirun else "outputs")
    if "${" in str(target):
        return
    existing = target.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "is not a folder" if not existing.is_dir() else "is not writable"
        raise ConfigError(
            f"{key}={str(target)!r} is invalid: the output folder must be writable "
            f"({existing} {what})"
        )


#: Hydra launcher plugins (their ``hydra/launcher`` option) -> (module, pip name, our extra)
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
}


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported (a missing parent package counts as missing)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_launcher(args: Sequence[str]) -> None:
    """Refuse ``hydra/launcher=<option>`` when the plugin behind it (for our
    ``conf/hydra/launcher/*.yaml``: the plugin option in their defaults) is not installed, with
    the pip command; Hydra would only say that ``hydra/launcher/joblib`` cannot be found."""
    for arg in args:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") != "hydra/launcher" or not sep:
            continue
        base = value
        ours = importlib.resources.files("defcon_exp.conf") / "hydra" / "launcher" / f"{value}.yaml"
        if ours.is_file():
            defaults = OmegaConf.create(ours.read_text()).get("defaults") or []
            base = next((d for d in defaults if isinstance(d, str) and d != "_self_"), value)
        if base in LAUNCHER_PLUGINS and not module_available(LAUNCHER_PLUGINS[base][0]):
            _, pip_name, extra = LAUNCHER_PLUGINS[base]
            raise ConfigError(
                f"hydra/launcher={value} is invalid here: it needs the Hydra plugin {pip_name}, "
                f"which is not installed; pip install 'defcon_exp[{extra}]' (or {pip_name})"
            )


INFO_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info")
#: Hydra flags refused under torchrun (rank 0 resolves the run dir from the default config)
DISTRIBUTED_REFUSED = ("-m", "--multirun", "-cn", "--config-name", "-cp", "--config-path",
                       "-cd", "--config-dir", "--experimental-rerun")


def main() -> None:
    """Console entry point: check group overrides, the launcher plugin and the output folder,
    then run Hydra (returns None: the console script's ``sys.exit(main())`` must see 0).

    A sweep (``-m``) passes SIGTERM on to a launcher's worker processes
    (:func:`forward_sigterm_to_workers`). Under ``torchrun`` (``WORLD_SIZE`` > 1) it first joins
    the process group; rank 0 resolves Hydra's run dir once and every rank runs with that
    ``hydra.run.dir``, so all ranks share one folder; ranks > 0 write no ``.hydra/`` record and
    no ``train.log`` and log WARNING+ only. ``-m`` is refused (run one torchrun per sweep job).
    """
    args = sys.argv[1:]
    try:
        check_group_overrides(args)
        check_launcher(args)
        check_output_dirs(args)
        env = distributed.detect()
        if env is not None:
            check_distributed_args(args)
    except (ConfigError, ValueError) as err:
        print(f"defcon-train: error: {err}", file=sys.stderr)
        sys.exit(1)
    if env is None:
        if any(a in ("-m", "--multirun") for a in args):
            signal.signal(signal.SIGTERM, forward_sigterm_to_workers)
        hydra_main()
        return
    if any(a in INFO_FLAGS for a in args):  # help / printed config: once, nothing to train
        if env.rank == 0:
            hydra_main()
        return
    distributed.init(env)
    try:
        run_dir = distributed.share_from_main(lambda: resolve_hydra_run_dir(args))
        sys.argv = [sys.argv[0], *distributed_hydra_args(args, run_dir, env.rank == 0)]
        hydra_main()
    finally:
        distributed.teardown()


def check_distributed_args(args: Sequence[str]) -> None:
    """Refuse Hydra flags that cannot work under torchrun (``-m`` and config-source flags)."""
    for arg in args:
        flag = arg.partition("=")[0]
        if flag in ("-m", "--multirun"):
            raise ConfigError(
                f"{flag} is invalid under torchrun: every process would run the whole sweep; "
                "launch one torchrun per job (e.g. a shell loop or a Slurm array, each with its "
                "own hydra.run.dir=...), or sweep without torchrun"
            )
        if flag in DISTRIBUTED_REFUSED:
            raise ConfigError(
                f"{flag} is invalid under torchrun: the packaged config is used; pass "
                "group=option and key=value overrides instead"
            )


def resolve_hydra_run_dir(args: Sequence[str]) -> str | None:
    """Hydra's ``hydra.run.dir`` for these command-line overrides (``${now:...}`` evaluated
    once, here), or None when the overrides do not compose (Hydra then reports the error)."""
    overrides = [a for a in args if not a.startswith("-")]
    try:
        with initialize_config_module("defcon_exp.conf", version_base="1.3"):
            composed = compose("config", overrides=overrides, return_hydra_config=True)
        return str(composed.hydra.run.dir)
    except Exception:  # Hydra's own run reports the problem properly
        return None


def _quote_override(value: str) -> str:
    """``value`` as a Hydra override value (quoted unless it is a plain path)."""
    if re.fullmatch(r"[\w./~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def distributed_hydra_args(args: Sequence[str], run_dir: str | None, main: bool) -> list[str]:
    """The command line each rank gives Hydra: the user's, with rank 0's ``hydra.run.dir``;
    ranks > 0 also keep Hydra from writing ``.hydra/`` and ``train.log`` there."""
    out = list(args)
    if run_dir is not None:
        out = [a for a in out if not a.lstrip("+").startswith("hydra.run.dir=")]
        out.append(f"hydra.run.dir={_quote_override(run_dir)}")
    if not main:
        out += ["hydra.output_subdir=null", "hydra/job_logging=none"]
    return out


def forward_sigterm_to_workers(signum: int, _frame: Any) -> None:
    """SIGTERM handler of a sweep's main process. A launcher's worker processes (joblib) get the
    signal too: each training job checkpoints and stops (exit 143), which ends the sweep, instead
    of training on as orphans after ``kill <defcon-train>``. Without workers (the basic launcher
    between jobs, submitit): the default action, exit at once. The basic launcher's running job
    has its own handler (:func:`defcon_exp.engine.fit.stop_on_signals`)."""
    # joblib's loky workers only: torch DataLoader workers are children too, and not launchers'
    workers = [p for p in multiprocessing.active_children() if type(p).__name__ == "LokyProcess"]
    if not workers:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    log.warning("received SIGTERM: passing it to the %d worker processes", len(workers))
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)


@hydra.main(config_path="pkg://defcon_exp.conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    """``defcon-train [group=option ...] [key=value ...]``; returns test top-1 (for sweepers)."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    where = "" if distributed.is_main() else f" (rank {distributed.rank()})"
    if not distributed.is_main():  # WARNING+ only, to stderr (no train.log: job_logging=none)
        logging.basicConfig(
            level=logging.WARNING,
            format=f"[rank {distributed.rank()}] %(levelname)s %(name)s: %(message)s",
            force=True,
        )
    try:
        auto = cfg.resume == "auto"
        if auto:
            cfg, finished = resolve_auto_resume(cfg, output_dir)
            if finished is not None:
                return finished["test"]["top1"]
        if cfg.resume and not auto:  # auto: this command's own config is the run's config
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise ConfigError(
                    f"resume={cfg.resume!r} is invalid with -m: resume one run at a time, or "
                    "re-launch the sweep with resume=auto and the same hydra.sweep.dir"
                )
            cfg = resume_config(cfg, HydraConfig.get().overrides.task)
        summary = train(cfg, None if cfg.resume else output_dir, restart_incomplete=auto)
    except TrainingInterrupted as err:  # Ctrl-C / SIGTERM stop the whole sweep, too
        if distributed.is_main():
            print(f"defcon-train: interrupted: {err}", file=sys.stderr)
        handler = signal.getsignal(err.signum)
        if err.signum not in (signal.SIGTERM, signal.SIGINT) and callable(handler):
            handler(err.signum, None)  # submitit's: requeues this job (resume=auto continues it)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            print(
                "defcon-train: to continue the whole sweep, run the same command with resume=auto "
                f"hydra.sweep.dir={output_dir.parent}",
                file=sys.stderr,
            )
        sys.exit(err.exit_code)
    except USER_ERRORS as err:
        log.debug("stopped by %s", type(err).__name__, exc_info=True)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise _sweep_job_error(output_dir, str(err)) from err
        print(f"defcon-train: error{where}: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise  # Hydra prints the traceback
        log.exception("job crashed")  # the traceback goes to the job's train.log
        raise _sweep_job_error(
            output_dir, f"{type(err).__name__}: {err} (traceback in {output_dir / 'train.log'})"
        ) from err
    return summary["test"]["top1"]


def _sweep_job_error(output_dir: Path, reason: str) -> SweepJobError:
    """Report a failed sweep job now (stderr and its train.log) and build the error that
    Hydra re-raises, with a pointer to the other jobs, once the whole sweep has ended."""
    job = HydraConfig.get().job.num
    message = f"job {job} ({output_dir}) failed: {reason}"
    log.error("%s", message)
    print(f"defcon-train: error: {message} (the other jobs go on)", file=sys.stderr)
    return SweepJobError(
        f"defcon-train: error: {message}\nThe sweep's other jobs ran to the end; each failed job "
        f"printed its error when it failed. `defcon-report {output_dir.parent}` lists the runs, "
        "failed ones without a summary.json."
    )


def resolve_auto_resume(
    cfg: DictConfig, output_dir: Path
) -> tuple[DictConfig, dict[str, Any] | None]:
    """``resume=auto``: the job's run dir (``hydra.run.dir``, or ``hydra.sweep.dir`` + job
    number under ``-m``) decides. ``summary.json`` there -> already finished (returns its
    summary); ``checkpoints/last.pt`` -> resume it; else a fresh start in that dir."""
    cfg = cfg.copy()
    summary = output_dir / "summary.json"
    if summary.is_file():
        message = f"{output_dir} already finished (summary.json exists): skipping"
        log.info("%s", message)
        if distributed.is_main():
            print(f"defcon-train: {message}", file=sys.stderr)
        return cfg, json.loads(summary.read_text())
    if (output_dir / "checkpoints" / "last.pt").is_file():
        log.info("resume=auto: resuming %s", output_dir)
        cfg.resume = str(output_dir)
    else:
        cfg.resume = None
    return cfg, None


if __name__ == "__main__":
    main()
