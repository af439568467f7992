"""The distributed helpers in 2 real gloo processes (``torch.multiprocessing.spawn``):
sharded evaluation with an odd test set, CPU SyncBatchNorm against BatchNorm on the whole
batch, errors and signals seen by one rank reaching all, and the NaN check agreeing."""

from __future__ import annotations

import socket
from pathlib import Path

import ddp_workers
import pytest
import torch.multiprocessing as mp

from defcon_exp.engine import distributed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_collective_helpers_in_two_gloo_processes(tmp_path: Path) -> None:
    mp.spawn(ddp_workers.run, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)


def test_single_process_helpers_are_identities() -> None:
    assert not distributed.is_active() and distributed.is_main() and distributed.world_size() == 1
    assert distributed.share_from_main(lambda: 3) == 3
    assert distributed.run_everywhere(lambda: 4) == 4


def test_detect_reads_torchrun_variables() -> None:
    assert distributed.detect({}) is None
    assert distributed.detect({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None
    env = distributed.detect({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert env == distributed.DistEnv(rank=3, world_size=4, local_rank=1)
    for bad in ({"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}):
        try:
            distributed.detect(bad)
        except ValueError as err:
            assert "torchrun" in str(err)
        else:
            raise AssertionError(f"{bad} accepted")


def test_detect_reads_srun_tasks() -> None:
    step = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
            "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0",
            "SLURM_NTASKS": "8"}
    env = distributed.detect(step)
    assert env is not None and (env.rank, env.world_size, env.local_rank) == (5, 8, 1)
    assert env.launcher == "slurm" and env.master_addr == "gpu07"
    assert env.master_port == distributed.detect(step).master_port  # same on every task
    assert 20000 <= env.master_port < 40000
    assert distributed.detect({**step, "MASTER_ADDR": "head", "MASTER_PORT": "2950"}).master_port == 2950
    # a batch script / salloc shell (no SLURM_STEP_NUM_TASKS) is one process; torchrun wins
    assert distributed.detect({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}) is None
    assert distributed.detect({**step, "WORLD_SIZE": "2", "RANK": "1"}).launcher == "torchrun"


@pytest.mark.parametrize(("nodelist", "host"), [
    ("gpu[03-05,09],cpu1", "gpu03"), ("node7", "node7"), ("a1,b2", "a1"), ("n[9]", "n9"),
])
def test_first_host_of_a_slurm_node_list(nodelist: str, host: str) -> None:
    assert distributed.first_host(nodelist) == host


@pytest.mark.parametrize(("setting", "per_process", "synced"), [
    (True, 64, True), (False, 2, False), ("auto", 4, True), ("auto", 15, True),
    ("auto", 16, False), ("auto", 64, False),
])
def test_sync_batchnorm_policy(setting: object, per_process: int, synced: bool) -> None:
    assert distributed.use_sync_batchnorm(setting, per_process) is synced
    assert distributed.SYNC_BELOW == 16


def test_sync_batchnorm_setting_is_checked_up_front() -> None:
    from hydra import compose, initialize_config_module

    from defcon_exp.config import ConfigError
    from defcon_exp.config_rules import validate_config

    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        assert compose("config").trainer.sync_batchnorm == "auto"
        bad = [compose("config", overrides=[f"trainer.sync_batchnorm={value}"]) for value in ("sometimes", "1")]
    for cfg in bad:
        with pytest.raises(ConfigError, match=r"trainer.sync_batchnorm=.* is invalid: must be true, false or auto"):
            validate_config(cfg)
    with pytest.raises(ValueError, match=r"trainer\.sync_batchnorm='sometimes' is invalid"):
        distributed.use_sync_batchnorm("sometimes", 4)


def test_a_rank_whose_launcher_is_gone_reports_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The portable check behind the kernel's parent-death signal: a changed parent pid."""
    import os
    import signal

    from defcon_exp.engine.distributed import group

    agree = distributed.SignalAgreement(lambda: None)
    assert agree() is None and not distributed.parent_gone()  # not under torchrun: no check
    monkeypatch.setattr(group, "_parent", os.getppid())
    assert agree.at_step() is None
    monkeypatch.setattr(group, "_parent", os.getppid() + 1)  # the agent we started under died
    assert distributed.parent_gone() and agree.at_step() == signal.SIGTERM
