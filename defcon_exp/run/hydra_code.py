"""No code from a preset or an override through Hydra's own node: before Hydra starts, the
``hydra`` node is composed exactly as Hydra will compose it (its argument parser, config
search path with ``--config-dir``/``--config-path``/``--config-name``, presets and overrides)
and every call key in it (``hydra.callbacks.*._target_``, ``hydra.launcher._target_``,
``hydra.sweeper._target_``, anything nested) is checked against
:data:`defcon_exp.safety.HYDRA_ALLOWED_TARGETS` by :func:`defcon_exp.safety.check_hydra_node`:
Hydra instantiates callbacks, launcher and sweeper before any job (and before any callback of
ours) runs, so this is the last point where a refusal runs no code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from defcon_exp.config import ConfigError
from defcon_exp.run.launch import INFO_FLAGS

__all__ = ["check_hydra_code", "composed_hydra_node"]

#: what a refusal names as the source of the value
SOURCE = "the composed config (command line and presets)"
#: flags under which Hydra only prints (help, config, info, version, completion)
NOTHING_RUNS = (*INFO_FLAGS, "--version", "-sc", "--shell-completion", "-p", "--package",
                "--resolve")


def composed_hydra_node(args: Sequence[str]) -> Any:
    """The ``hydra`` node Hydra will compose for ``defcon-train ARGS`` (unresolved), or None
    when the command line does not compose (Hydra then reports that itself)."""
    import os

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.types import RunMode

    import defcon_exp.config  # noqa: F401 (the schema and the resolvers)

    parser = get_args_parser()

    def refuse(message: str) -> Any:  # argparse would print its usage and exit
        raise ValueError(message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        parsed = parser.parse_args(list(args))
        search_path = create_automatic_config_search_path(
            None, "defcon_exp.cli.train", parsed.config_path or "pkg://defcon_exp.conf")
        if parsed.config_dir is not None:
            search_path.prepend(provider="command-line",
                                path=f"file://{os.path.abspath(parsed.config_dir)}",
                                anchor=SearchPathQuery(provider="schema"))
        hydra = Hydra(task_name="train", config_loader=ConfigLoaderImpl(config_search_path=search_path))
        # MULTIRUN: sweep overrides are left out; the hydra node is the same in both modes
        cfg = hydra.compose_config(parsed.config_name or "config", parsed.overrides,
                                   run_mode=RunMode.MULTIRUN, from_shell=True)
    except (Exception, SystemExit):  # argparse exits; Hydra reports its own errors
        return None
    return cfg.hydra


def check_hydra_code(args: Sequence[str]) -> None:
    """Refuse ``defcon-train ARGS`` when Hydra's node names code outside the allow-list.

    Raises:
        ConfigError: one line naming the key, the value and the allowed values.
    """
    from omegaconf import OmegaConf

    from defcon_exp.safety import UnsafeConfigError, check_hydra_node

    if any(a.partition("=")[0] in NOTHING_RUNS for a in args):
        return  # Hydra prints and exits: it instantiates nothing
    node = composed_hydra_node(args)
    if node is None:
        return
    from defcon_exp.run.sweep_checks import SWEEPER_CLASS, check_sweeper_node

    plain = OmegaConf.to_container(node, resolve=False)
    sweeper = plain.get("sweeper")
    if isinstance(sweeper, dict) and sweeper.get("_target_") == SWEEPER_CLASS:
        check_sweeper_node(sweeper)  # ours: its own keys; sampler/pruner are built by name
        plain["sweeper"] = {k: v for k, v in sweeper.items() if k not in ("sampler", "pruner")}
    try:
        check_hydra_node(plain, SOURCE)
    except UnsafeConfigError as err:
        raise ConfigError(str(err)) from None
