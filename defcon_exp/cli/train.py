"""``defcon-train``: check the command line, then Hydra composes the config and calls
:func:`defcon_exp.run.job.run_job` (``train(cfg)`` below it is what tests call)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn


def _interrupted_at_start_up(*_: Any) -> NoReturn:
    """A Ctrl-C before a job runs (imports, checks): one line and exit 130, not a traceback;
    a second Ctrl-C meanwhile is ignored. ``os._exit``: once a KeyboardInterrupt has passed
    through the interpreter's own code, its exit would re-raise SIGINT (exit -2) instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = sys.modules.get("defcon_exp.run.lock")
    if lock is not None:  # a dir made only to hold the lock
        lock.remove_lock_only_dirs()
    print("defcon-train: interrupted (Ctrl-C) during start-up: nothing was trained", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signal.SIGINT)


# run as the command (not imported by tests): a Ctrl-C from here until Hydra starts is one line
_AS_COMMAND = __name__ == "__main__" or os.path.basename(sys.argv[0]) == "defcon-train"
if _AS_COMMAND and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_at_start_up)

try:  # Hydra's and the package's imports take a second or two: a Ctrl-C lands here often
    import importlib.util
    import logging
    import warnings
    from pathlib import Path

    import hydra
    from omegaconf import DictConfig

    from defcon_exp.config import ConfigError
    from defcon_exp.run import launch
    from defcon_exp.run.override_checks import check_group_choices, check_override_keys
    from defcon_exp.run.train_help import HELP_FLAGS, render_help
except KeyboardInterrupt:
    _interrupted_at_start_up()

# Training code (torch, torchvision, the engine) is imported inside hydra_main: --help and
# command-line errors answer without it (scripts/bench_cli_latency.py).

__all__ = ["hydra_main", "main"]


def main() -> None:
    """Console entry point: check the command line, then run Hydra (returns None: the console
    script's ``sys.exit(main())`` must see 0). A sweep (``-m``) passes SIGTERM on to a
    launcher's workers. Under ``torchrun`` it first joins the process group and every rank
    runs with rank 0's ``hydra.run.dir`` (:mod:`defcon_exp.run.launch`). A Ctrl-C before a
    job runs (imports, checks) is one line, not a traceback."""
    try:
        _main(sys.argv[1:])
    except KeyboardInterrupt:
        _interrupted_at_start_up()


def _main(args: list[str]) -> None:
    # Hydra 1.4 warns on every callback it instantiates; ours is named by our packaged conf
    warnings.filterwarnings(
        "ignore", message=r"hydra\.utils\.instantiate\(\) resolved _target_='defcon_exp\.run\."
    )
    if any(a in HELP_FLAGS for a in args) and "--hydra-help" not in args:
        try:
            launch.check_group_overrides(args)
            check_group_choices(args)
            check_override_keys(args)
            print(render_help(args))
        except ConfigError as err:
            print(f"defcon-train: error: {err}", file=sys.stderr)
            sys.exit(1)
        return
    expose_sweeper_plugin()  # editable installs: Hydra's plugin scan must see our sweeper
    try:
        env = launch.check_command_line(args)
    except (ConfigError, ValueError) as err:
        print(f"defcon-train: error: {launch.error_line(err)}", file=sys.stderr)
        sys.exit(1)
    if signal.getsignal(signal.SIGINT) is _interrupted_at_start_up:  # a run from here on:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # it tidies up on Ctrl-C
    if env is None:
        if any(a in ("-m", "--multirun") for a in args):
            signal.signal(signal.SIGTERM, launch.forward_sigterm_to_workers)
        hydra_main()
        return
    if any(a in launch.INFO_FLAGS for a in args):  # help / printed config: once, nothing to train
        if env.rank == 0:
            hydra_main()
        return
    from defcon_exp.engine import distributed

    distributed.init(env)
    try:
        run_dir = distributed.share_from_main(lambda: launch.resolve_hydra_run_dir(args))
        sys.argv = [sys.argv[0], *launch.distributed_hydra_args(args, run_dir, env.rank == 0)]
        hydra_main()
    finally:
        distributed.teardown()


def expose_sweeper_plugin() -> None:
    """Hydra finds plugins with ``pkgutil.walk_packages(hydra_plugins.__path__)``. An editable
    install (``pip install -e .``, setuptools' import-hook finder) puts a placeholder instead of
    our folder in that namespace path, which pkgutil cannot list, so ``hydra/sweeper=optuna``
    would be an "Unknown plugin class". Adding the real folder fixes the scan; with a normal
    install the folder is already there and nothing changes."""
    try:
        import hydra_plugins

        spec = importlib.util.find_spec("hydra_plugins.defcon_optuna_sweeper")
    except ImportError:
        return
    if spec is None or not spec.submodule_search_locations:
        return
    folder = str(Path(next(iter(spec.submodule_search_locations))).parent)
    if folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)


@hydra.main(config_path="pkg://defcon_exp.conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | list[float] | None:
    """``defcon-train [group=option ...] [key=value ...]``; returns ``search.objective``'s
    validation value(s) for sweepers (None without a validation split), never a test metric."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from defcon_exp.engine import distributed
    from defcon_exp.run.job import run_job
    from defcon_exp.run.objective import sweeper_return

    hydra_cfg = HydraConfig.get()
    if not distributed.is_main():  # WARNING+ only, to stderr (no train.log: job_logging=none)
        logging.basicConfig(
            level=logging.WARNING,
            format=f"[rank {distributed.rank()}] %(levelname)s %(name)s: %(message)s",
            force=True,
        )
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    output_dir = Path(hydra_cfg.runtime.output_dir)
    summary = run_job(cfg, output_dir, job_num, hydra_cfg.overrides.task)
    return sweeper_return(summary, cfg.search.objective)


if __name__ == "__main__":
    main()
