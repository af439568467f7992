"""``train(cfg)``: plan the run, build its objects by name, call the engine.

Plain, importable code: ``defcon-train``'s Hydra main calls it, and so do tests (with
``hydra.compose()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from defcon_exp.analysis.histograms import AttentionHistograms
from defcon_exp.config import ConfigError
from defcon_exp.config_rules import as_config_error, validate_config
from defcon_exp.data import build_data
from defcon_exp.data.config import check_global_batch
from defcon_exp.data.limits import limit_bundle
from defcon_exp.engine import distributed
from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.early_stopping import EarlyStopping
from defcon_exp.engine.fit import fit
from defcon_exp.engine.fit_settings import Loaders, RunIdentity, TrainerConfig
from defcon_exp.engine.hooks import EpochHook
from defcon_exp.engine.precision import check_precision_supported, parse_precision
from defcon_exp.engine.seed import resolve_device, seed_everything
from defcon_exp.engine.speedups import compile_model, parse_compile, set_cudnn_benchmark
from defcon_exp.models.pretrained import load_pretrained
from defcon_exp.models.resnet import count_parameters
from defcon_exp.rates import count_text
from defcon_exp.run.build import build_model, build_optimizer_and_schedule, model_name, run_facts
from defcon_exp.run.hparams import hparams, kernel_size_shown
from defcon_exp.run.launch import check_writable_folder
from defcon_exp.run.lock import hold_run_dir
from defcon_exp.run.plan import RunPlan, plan_run, remove_stale_temp_files
from defcon_exp.run.run_label import run_label
from defcon_exp.run_dir import resume_kind, resume_run_dir, unique_run_dir

__all__ = ["target_run_dir", "train"]

log = logging.getLogger("defcon_exp.train")


def target_run_dir(cfg: DictConfig, run_dir: str | Path | None) -> Path:
    """Where this run writes: the resumed run's own dir > ``run_dir`` > ``cfg.run_dir`` >
    Hydra's run dir > a fresh ``outputs/DATE/TIME_us``."""
    if resume_kind(cfg.resume) == "path":
        return resume_run_dir(cfg.resume)
    target = run_dir or cfg.run_dir
    if target is None and HydraConfig.initialized():
        target = HydraConfig.get().runtime.output_dir
    if target is None and resume_kind(cfg.resume) == "auto":
        raise ConfigError("resume='auto' is invalid here: it needs run_dir (or Hydra's run dir)")
    return Path(target) if target is not None else unique_run_dir()


def train(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    restart_incomplete: bool = False,
    overrides: Sequence[str] | None = None,
    epoch_hooks: Sequence[EpochHook] = (),
) -> dict[str, Any]:
    """Run one training job described by ``cfg`` (composed ``conf/config.yaml``).

    ``overrides``: with ``resume=<path>``, the command line's value overrides applied to the
    checkpoint's own config (the CLI); without, ``cfg`` is used as given. Returns the summary
    (also ``<run_dir>/summary.json``): ``test`` top1/top5/loss, ``best_val``...

    Raises:
        ConfigError / ValueError: a config value breaks a rule (named in the message).
        RunDirBusy: another process holds the run dir.
        DatasetNotFoundError: CIFAR is missing and cannot be downloaded.
        NonFiniteLossError: the loss became NaN/Inf (the last good checkpoint is kept).
    """
    validate_config(cfg)
    as_config_error(check_global_batch, cfg.data, distributed.world_size())
    decided: list[RunPlan] = []
    with contextlib.ExitStack() as held:

        def decide() -> dict[str, Any]:  # rank 0 only; its errors reach every rank
            target = target_run_dir(cfg, run_dir)
            check_writable_folder(target, "run_dir")
            resumed = resume_kind(cfg.resume) == "path"  # a resume creates no dir
            held.enter_context(hold_run_dir(target, create=not resumed))  # rank 0, whole run
            decided.append(plan_run(cfg, target, overrides, restart_incomplete))
            return _shareable(decided[0])

        shared = distributed.share_from_main(decide)
        if shared["summary"] is not None:
            return shared["summary"]
        if decided:
            return _run_with_threads(decided[0], epoch_hooks)
        plan = RunPlan(
            OmegaConf.create(shared["config"]), Path(shared["run_dir"]), shared["checkpoint"]
        )
        if plan.checkpoint is not None:
            plan.state = load_checkpoint(plan.checkpoint)
            plan.state["path"] = str(plan.checkpoint)
        return _run_with_threads(plan, epoch_hooks)


def _shareable(plan: RunPlan) -> dict[str, Any]:
    """What ranks > 0 need of rank 0's plan (plain data: no tensors)."""
    return {
        "config": OmegaConf.to_container(plan.cfg, resolve=True),
        "run_dir": str(plan.run_dir),
        "checkpoint": plan.checkpoint,
        "summary": plan.summary,
    }


def _static_train_batches(data_cfg: Any, compile_mode: str | None) -> Any:
    """``data_cfg``, with ``drop_last`` on under ``torch.compile``: a last, smaller training
    batch (50,000 mod 128 = 80 images on CIFAR) would be a new shape and recompile every
    epoch. The order is reshuffled every epoch, so no image is always left out."""
    if compile_mode is None or data_cfg.drop_last:
        return data_cfg
    log.info("trainer.compile: training drops each epoch's last incomplete batch (static shapes)")
    data_cfg = data_cfg.copy()
    data_cfg.drop_last = True
    return data_cfg


def _run_with_threads(plan: RunPlan, epoch_hooks: Sequence[EpochHook]) -> dict[str, Any]:
    """:func:`_run` with ``trainer.num_threads`` applied for the run only: torch's thread
    count is process-wide, and a caller's later work (or a test's reference run) must not
    inherit it (float sums differ between thread counts)."""
    threads = torch.get_num_threads()
    try:
        return _run(plan, epoch_hooks)
    finally:
        torch.set_num_threads(threads)


def _run(plan: RunPlan, epoch_hooks: Sequence[EpochHook]) -> dict[str, Any]:
    """Build data, model, optimiser and schedule for ``plan`` and call :func:`fit`."""
    cfg, out_dir = plan.cfg, plan.run_dir
    if distributed.is_main():
        remove_stale_temp_files(out_dir)
    device = (  # torchrun: cuda:LOCAL_RANK or cpu
        distributed.device_for(cfg.trainer.device, distributed.local_rank())
        if distributed.is_active() else resolve_device(cfg.trainer.device))
    precision = parse_precision(cfg.trainer.precision)
    check_precision_supported(precision, device)
    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    set_cudnn_benchmark(cfg.trainer.deterministic)
    compile_mode = parse_compile(cfg.trainer.compile)
    name = model_name(cfg.model)
    _log_start(plan, name, device)
    world = distributed.world_size()
    # rank 0 first (a CIFAR download happens once), then the others; errors stop every rank
    data = distributed.main_first(lambda: build_data(
        _static_train_batches(cfg.data, compile_mode), seed=cfg.seed, device=device,
        rank=distributed.rank(), world_size=world))
    data = limit_bundle(data, cfg.trainer)  # trainer.limit_*_batches (debug runs)
    # every rank must run the same number of steps, or DDP would wait for the missing ones
    distributed.check_same(len(data.train), "training batches per epoch")
    sync_bn = distributed.is_active() and distributed.use_sync_batchnorm(
        cfg.trainer.sync_batchnorm, cfg.data.batch_size // world)
    _log_data(cfg, data, sync_bn)
    model, forward_model = _build_model(cfg, data.num_classes, device, name, precision,
                                        compile_mode, sync_bn, fresh=plan.state is None)
    # the schedule counts optimiser steps: one per trainer.accumulate_grad_batches batches
    steps_per_epoch = -(-len(data.train) // cfg.trainer.accumulate_grad_batches)
    optimizer, schedule, plateau = build_optimizer_and_schedule(cfg, model, steps_per_epoch)
    trainer, identity = _fit_inputs(cfg, out_dir, precision, name)
    identity.summary_extra = run_facts(cfg, model, data.num_classes, world)
    loaders = Loaders(data.train, data.val, data.test, data.num_classes)
    hooks = _epoch_hooks(cfg, model, data, device, epoch_hooks)
    return fit(model, optimizer, schedule, plateau, loaders, device, out_dir, trainer, plan.state,
               identity=identity, forward_model=forward_model, epoch_hooks=hooks)


def _build_model(
    cfg: DictConfig, num_classes: int, device: torch.device, name: str, precision: str,
    compile_mode: Any, sync_bn: bool, fresh: bool = True,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(model, forward_model)``: the raw module (its keys go into checkpoints) and what runs
    the forward passes (SyncBatchNorm, channels_last, DDP, compile applied). A ``fresh``
    run starts from ``model.init_from`` when it is set (a resumed one from its checkpoint)."""
    model = distributed.run_everywhere(lambda: build_model(cfg.model, num_classes, device))
    if fresh and cfg.model.get("init_from"):
        log.info(load_pretrained(model, cfg.model.init_from).message())
    log.info("model %s: %s trainable parameters", name, f"{count_parameters(model):,}")
    if sync_bn:
        model = distributed.convert_sync_batchnorm(model, device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)  # same Parameter objects
    forward_model: torch.nn.Module = model
    if distributed.is_active():
        forward_model = distributed.wrap_ddp(model, device)
    # compile last (it wraps DDP, as PyTorch recommends); checkpoints keep `model`'s keys
    forward_model = compile_model(forward_model, compile_mode)
    log.info("precision=%s channels_last=%s compile=%s", precision, cfg.trainer.channels_last,
             compile_mode or "off")
    return model, forward_model


def _fit_inputs(
    cfg: DictConfig, out_dir: Path, precision: str, name: str
) -> tuple[TrainerConfig, RunIdentity]:
    """The typed ``trainer`` group (``precision`` parsed) and the run's identity; writes the
    effective ``config.yaml`` (rank 0)."""
    container: Any = OmegaConf.to_container(cfg, resolve=True)
    # the effective config of this (re)start; on resume it differs from Hydra's .hydra/ record
    if distributed.is_main():
        OmegaConf.save(OmegaConf.create(container), out_dir / "config.yaml")
    trainer = OmegaConf.to_object(OmegaConf.merge(TrainerConfig, container["trainer"]))
    trainer.precision = precision  # type: ignore[union-attr]
    tb_name = None
    if HydraConfig.initialized():  # the CLI: tb/<model>_<overrides> names the run in TensorBoard
        hydra_cfg = HydraConfig.get()
        tb_name = run_label(name, list(hydra_cfg.overrides.task), hydra_cfg)
    identity = RunIdentity(name, container, hparams(container, name), cfg.seed, tb_name)
    return trainer, identity  # type: ignore[return-value]


def _epoch_hooks(cfg: DictConfig, model: torch.nn.Module, data: Any, device: torch.device,
                 epoch_hooks: Sequence[EpochHook]) -> list[EpochHook]:
    """The caller's hooks, after the attention histograms (rank 0 only: no collective)."""
    hooks = list(epoch_hooks)
    histograms = AttentionHistograms.create(  # rank 0 only: no collective in its forward
        model, data.val if data.val is not None else data.test, device,
        cfg.trainer.histograms_every_n_epochs if distributed.is_main() else 0,
        cfg.trainer.histogram_images)
    if histograms is not None:
        hooks.insert(0, histograms)
    stopping = cfg.trainer.get("early_stopping")
    if stopping is not None and stopping.monitor is not None:  # every rank: the metrics agree
        hooks.append(EarlyStopping(**stopping))
    return hooks


def _log_start(plan: RunPlan, name: str, device: torch.device) -> None:
    cfg = plan.cfg
    # a resume is announced once, by fit() ("resumed from epoch N ... in <run dir>")
    log.info("run dir: %s | host %s pid %d", plan.run_dir, socket.gethostname(), os.getpid())
    log.info(
        "model=%s kernel_size=%s | data=%s batch=%d | optim=%s lr=%g wd=%g | scheduler=%s | "
        "epochs=%d | seed=%d | device=%s threads=%d", name, kernel_size_shown(cfg.model),
        cfg.data.name, cfg.data.batch_size, cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay,
        cfg.scheduler.name, cfg.trainer.epochs, cfg.seed, device, torch.get_num_threads())
    log.debug("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))


def _log_data(cfg: DictConfig, data: Any, sync_bn: bool) -> None:
    train = f"{data.train.num_samples} images ({count_text(len(data.train), 'batch')})"
    log.info("data %s: train %s | val %s | test %d images | %d classes", cfg.data.name, train,
             data.val.num_samples if data.val is not None else "none (data.val_size=0)",
             data.test.num_samples, data.num_classes)
    if distributed.is_active():
        world = distributed.world_size()
        log.info(
            "distributed: %d processes, global batch %d = %d per process, sync_batchnorm=%s; "
            "rank 0 trains on %s and evaluates %d test images per epoch", world,
            cfg.data.batch_size, cfg.data.batch_size // world, sync_bn, train,
            data.test.num_samples)
