"""One line of help per config group and key, for ``defcon-train --help``.

Every key of the schema (:class:`defcon_exp.config.Config`) has an entry here; a test
(``tests/cli/test_help.py``) fails for a key added without one. Plain text, no imports: the
help answers in about a second.
"""

from __future__ import annotations

__all__ = ["GROUP_HELP", "HIDDEN_UNLESS", "KEY_HELP", "OTHER_GROUPS"]

#: config groups (``group=option``) in the order the help lists them
GROUP_HELP: dict[str, str] = {
    "model": "the attention: one channel-attention module in every block of the network",
    "arch": "the network: cifar_resnet50 (default) or resnet18..152_imagenet (docs/imagenet.md)",
    "data": "the images: CIFAR-100 (the paper), CIFAR-10, an offline synthetic set, your own "
    "image folder (imagefolder) or ImageNet",
    "optim": "the optimiser",
    "scheduler": "the learning-rate schedule (epochs are epochs, warm-up included)",
    "trainer": "the loop: epochs, device, precision, logging, checkpoints",
    "experiment": "a whole recipe (overrides several groups), e.g. smoke or defcon_best",
    "hparams_search": "an Optuna search preset (docs/search.md)",
    "debug": "fast_dev_run: a few batches of every phase, one epoch, a scratch dir",
}

#: groups below hydra/ that users pick on the command line
OTHER_GROUPS: dict[str, str] = {
    "hydra/launcher": "how a -m sweep runs its jobs (local_parallel: joblib, slurm_*: submitit)",
    "hydra/sweeper": "optuna: a hyper-parameter search instead of a grid (docs/search.md)",
}

#: keys shown only when ``data.name`` is one of the listed values (the others ignore them)
HIDDEN_UNLESS: dict[str, tuple[str, ...]] = {
    "data.train_size": ("synthetic",),
    "data.test_size": ("synthetic",),
    "data.root": ("cifar10", "cifar100", "imagefolder", "imagenet"),
    "data.download": ("cifar10", "cifar100", "imagefolder", "imagenet"),
    **{
        f"data.{key}": ("imagefolder", "imagenet")
        for key in ("train_crop", "eval_resize", "eval_crop", "max_bad_images")
    },
}

KEY_HELP: dict[str, str] = {
    "model._target_": "the model builder (only the allow-listed defcon_exp builders run)",
    "model.attention": "attention module in every bottleneck: none, se, eca, defcon, cbam...",
    "model.kernel_size": "1D kernel of eca/defcon*: paper (3,5,5,7), adaptive (ECA formula), "
    "an odd int or 4 odd ints",
    "model.attention_kwargs": "extra arguments of the attention module (+model.attention_kwargs.x=...)",
    "model.stem": "cifar (3x3 conv, ours) or released (the authors' code, docs/released_code.md)",
    "model.kernels": "aten | triton | auto: attention maths and block tail on CUDA as ATen ops "
    "or fused Triton kernels (the CPU always runs ATen)",
    "model.drop_path_rate": "stochastic depth of the last bottleneck (linear in depth); 0 = off",
    "model.arch": "the network (arch=...): cifar_resnet50 | resnet{18,34,50,101,152}_imagenet",
    "model.init_from": "a torchvision state dict to start from (weights_only; the attention "
    "keeps its own init)",
    "data.name": "cifar100 | cifar10 | synthetic | imagefolder | imagenet",
    "data.root": "folder holding (or receiving) the CIFAR archive, or train/ and val/ of "
    "class folders",
    "data.train_crop": "RandomResizedCrop side of training images (null = 224)",
    "data.eval_resize": "evaluation: shorter side resized to this (null = 256)...",
    "data.eval_crop": "... then centre-cropped to this (null = 224)",
    "data.max_bad_images": "corrupt files tolerated, each replaced by the next and logged "
    "(null = 0: stop at the first)",
    "data.download": "download a missing CIFAR archive (torchvision URL and checksum)",
    "data.val_size": "training images held out for validation (stratified); 0 = none; the "
    "paper: 10000",
    "data.data_seed": "seed of the split and of the synthetic images (not of the run)",
    "data.batch_size": "training batch (global under torchrun)",
    "data.eval_batch_size": "validation/test batch",
    "data.drop_last": "drop the last incomplete training batch",
    "data.loader": "dataloader (workers, per-image transforms) | tensor (whole set on the device)",
    "data.num_workers": "DataLoader worker processes (dataloader only; 0 = main process)",
    "data.pin_memory": "pin host batches when training on CUDA (dataloader only)",
    "data.augment": "random crop (4 px padding) + horizontal flip of training images",
    "data.cutout": "Cutout patch length in pixels; 0 = off",
    "data.auto_augment": "none, randaugment, trivialaugment or autoaugment_cifar10 (dataloader only)",
    "data.random_erasing": "RandomErasing probability per training image (dataloader only); 0 = off",
    "data.num_classes": "classes; null = the data set's own (100 / 10)",
    "data.train_size": "synthetic training images (before the validation split)",
    "data.test_size": "synthetic test images",
    "optim._target_": "the optimiser builder (fixed)",
    "optim.name": "sgd | adamw",
    "optim.lr": "peak learning rate",
    "optim.weight_decay": "weight decay (L2 for sgd, decoupled for adamw)",
    "optim.momentum": "sgd momentum",
    "optim.nesterov": "sgd Nesterov momentum",
    "optim.betas": "adamw betas",
    "optim.eps": "adamw epsilon",
    "optim.exclude_norm_and_bias": "no weight decay on BatchNorm and bias parameters",
    "scheduler._target_": "the schedule builder (fixed)",
    "scheduler.name": "constant | step | cosine | warm_restarts | plateau",
    "scheduler.interval": "step: update the lr every iteration | epoch: once per epoch",
    "scheduler.warmup_epochs": "linear warm-up length in epochs (fractions allowed)",
    "scheduler.warmup_start_factor": "warm-up starts at lr x this",
    "scheduler.milestones": "step: epochs where lr *= gamma",
    "scheduler.gamma": "step: the lr factor at each milestone",
    "scheduler.T_max": "cosine: period in epochs; null = the epochs after warm-up",
    "scheduler.T_0": "warm_restarts: first period in epochs",
    "scheduler.T_mult": "warm_restarts: period growth factor",
    "scheduler.eta_min": "cosine/warm_restarts: the lowest lr",
    "scheduler.plateau.monitor": "plateau: the metric watched, val|train / loss|top1|top5",
    "scheduler.plateau.mode": "plateau: min or max",
    "scheduler.plateau.factor": "plateau: lr factor when it stalls",
    "scheduler.plateau.patience": "plateau: epochs without improvement before reducing",
    "scheduler.plateau.threshold": "plateau: smallest change counted as improvement",
    "scheduler.plateau.cooldown": "plateau: epochs to wait after a reduction",
    "scheduler.plateau.min_lr": "plateau: the lowest lr",
    "trainer.epochs": "training epochs",
    "trainer.device": "auto | cpu | cuda | cuda:N",
    "trainer.precision": "32 | bf16 (autocast) | 16-mixed (float16 + GradScaler)",
    "trainer.channels_last": "channels_last memory format (faster convolutions on tensor cores)",
    "trainer.compile": "torch.compile: false | true | default | reduce-overhead | max-autotune",
    "trainer.grad_clip_norm": "clip the global gradient norm (e.g. 5); null = off",
    "trainer.label_smoothing": "label smoothing of the training loss, in [0, 1); 0 = off",
    "trainer.accumulate_grad_batches": "micro-batches per optimiser step (exact, BatchNorm aside)",
    "trainer.limit_train_batches": "batches per epoch: an int (5) or a fraction (0.25); 1.0 = all",
    "trainer.limit_val_batches": "batches per validation pass: an int or a fraction; 1.0 = all",
    "trainer.limit_test_batches": "batches of the test pass: an int or a fraction; 1.0 = all",
    "trainer.early_stopping.monitor": "stop when this stops improving: val|train / loss|top1|top5;"
    " null = off",
    "trainer.early_stopping.patience": "epochs without improvement before stopping",
    "trainer.early_stopping.min_delta": "smallest change counted as an improvement",
    "trainer.early_stopping.mode": "auto (min for loss, max for top1/top5) | min | max",
    "trainer.mix.mixup_alpha": "Mixup's Beta(alpha, alpha); 0 = off",
    "trainer.mix.cutmix_alpha": "CutMix's Beta(alpha, alpha); 0 = off",
    "trainer.mix.prob": "probability that a batch is mixed",
    "trainer.mix.switch_prob": "with both on: probability of CutMix instead of Mixup",
    "trainer.ema.enabled": "keep an exponential moving average of weights and BatchNorm buffers",
    "trainer.ema.decay": "the EMA's decay per optimiser step (e.g. 0.9998)",
    "trainer.ema.select": "raw or ema: the weights that pick best.pt and give the headline",
    "trainer.log_every_n_steps": "TensorBoard step scalars and bar refresh interval",
    "trainer.checkpoint_every_n_steps": "also save last.pt every n steps inside epochs; 0 = "
    "epoch ends only",
    "trainer.keep_checkpoints": "what a finished run keeps: all | last_slim (no optimiser state)"
    " | best (best.pt only) | auto (all for a run, last_slim for a -m sweep's jobs)",
    "trainer.histograms_every_n_epochs": "TensorBoard attention histograms every n epochs; 0 = off",
    "trainer.histogram_images": "probe images for the histograms (first of val, else test)",
    "trainer.progress": "tqdm bars (only on a terminal)",
    "trainer.deterministic": "torch.use_deterministic_algorithms (warn only)",
    "trainer.sync_batchnorm": "torchrun: true | false | auto (SyncBatchNorm below 16 images a "
    "process)",
    "trainer.num_threads": "torch CPU threads; null = OMP_NUM_THREADS or all cores",
    "seed": "the run's seed (init, shuffling, augmentation)",
    "resume": "a run dir or checkpoint to continue in its own dir; auto: resume or skip this "
    "job's dir",
    "run_dir": "where train() writes outside Hydra; null = Hydra's run dir",
    "tags": "free labels stored with the run",
    "search.objective": "what a search optimises: validation metrics only (docs/search.md)",
    "search.storage": "set by the Optuna sweeper for each trial",
    "search.study_name": "set by the Optuna sweeper for each trial",
    "search.trial_number": "set by the Optuna sweeper for each trial",
    "search.prune": "set by the Optuna sweeper: report per-epoch values and obey the pruner",
    "search.pruner": "set by the Optuna sweeper: the study's pruner",
}
