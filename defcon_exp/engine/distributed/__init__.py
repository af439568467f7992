"""Multi-process training with PyTorch's own DDP, launched by ``torchrun``.

A process is part of a distributed run when ``torchrun`` (or any launcher following its
contract) set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR`` /
``MASTER_PORT``), or when Slurm's ``srun`` started it as one of several tasks of a job step
(``SLURM_STEP_NUM_TASKS`` > 1, ``SLURM_PROCID``, ``SLURM_LOCALID``; the first node of the
step is the rendezvous host); :func:`detect` reads them. Without them — a single plain
process — every helper here is the identity or a no-op, so single-process runs behave
exactly as before.

One process group serves everything. With CUDA available its backend is
``cpu:gloo,cuda:nccl``: CUDA tensors (DDP gradients, SyncBatchNorm, metric sums on the GPU)
go through NCCL, CPU tensors and pickled objects (the run dir, errors, stop flags) through
gloo, so control messages never force a GPU sync. Without CUDA it is plain gloo.

Rules every caller follows (they are what keeps a run from hanging):

* a collective is called by every rank at the same point — the call sites are in code run
  by all ranks with rank-independent conditions (same step counts, agreed flags);
* a failure that may hit one rank only (a missing file, a data error) goes through
  :func:`run_everywhere` / :func:`main_first`, which gather the errors and raise on *every*
  rank, so no rank waits in a collective for a peer that has already left;
* only rank 0 (:func:`is_main`) writes files or logs below WARNING.

Modules, one job each: :mod:`.environment` (the launcher's variables), :mod:`.group` (join,
leave, who am I, follow the torchrun agent), :mod:`.collectives` (reductions, broadcasts,
error gathering), :mod:`.stopping` (stop-signal agreement), :mod:`.batchnorm` (synchronised
BatchNorm and when to use it), :mod:`.ddp` (the DDP wrapper). The names imported below are
the package's API (``distributed.is_main()``...).
"""
# ruff: noqa: F401

from defcon_exp.engine.distributed.batchnorm import (
    SYNC_BELOW,
    CPUSyncBatchNorm,
    convert_sync_batchnorm,
    use_sync_batchnorm,
)
from defcon_exp.engine.distributed.collectives import (
    DistributedError,
    all_reduce,
    barrier,
    broadcast_buffers,
    check_same,
    main_first,
    reduce_metric_state,
    run_everywhere,
    share_from_main,
)
from defcon_exp.engine.distributed.ddp import wrap_ddp
from defcon_exp.engine.distributed.environment import DistEnv, detect, first_host
from defcon_exp.engine.distributed.group import (
    device_for,
    init,
    is_active,
    is_main,
    local_rank,
    parent_gone,
    rank,
    teardown,
    world_size,
)
from defcon_exp.engine.distributed.stopping import SignalAgreement
