"""The Hydra ``Sweeper`` plugin class; the work is in :mod:`defcon_exp.run.sweeper`.

Named ``DefconOptunaSweeper`` and registered under no ConfigStore name: ``hydra/sweeper=optuna``
is defcon-train's own ``conf/hydra/sweeper/optuna.yaml``, which takes precedence over the
upstream hydra-optuna-sweeper's ConfigStore entry of the same name, so both can be installed.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DefconOptunaSweeper(Sweeper):
    """Optuna over defcon-train jobs: resumable studies, pruning, validation objectives."""

    def __init__(self, **kwargs: Any) -> None:
        try:
            from defcon_exp.run.sweeper import OptunaSweeperImpl
        except ImportError as err:
            raise ImportError(
                f"hydra/sweeper=optuna needs Optuna ({err}); pip install 'defcon_exp[search]'"
            ) from err
        self.impl = OptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
