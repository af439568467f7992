"""The Hydra ``Sweeper`` plugin class; the work is in :mod:`defcon_exp.run.sweeper`.

Named ``DefconOptunaSweeper`` and registered under no ConfigStore name: ``hydra/sweeper=optuna``
is defcon-train's own ``conf/hydra/sweeper/optuna.yaml``, which takes precedence over the
upstream hydra-optuna-sweeper's ConfigStore entry of the same name, so both can be installed.
A refusal (a bad setting, a busy study) or a stopped search is one line on stderr and exit 1:
Hydra would print a traceback, or wrap an error of ``__init__`` in several lines, so nothing
is checked in ``__init__`` and the errors of ``setup`` / ``sweep`` are printed here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    from defcon_exp.config import ConfigError
    from defcon_exp.run.sweep_checks import SearchStopped

    try:
        yield
    except (ConfigError, SearchStopped) as err:
        message = str(err)
    else:
        return
    print(f"defcon-train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)  # SystemExit passes Hydra's error handler: no traceback


class DefconOptunaSweeper(Sweeper):
    """Optuna over defcon-train jobs: resumable studies, pruning, validation objectives."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        with _one_line_errors():
            from omegaconf import OmegaConf

            from defcon_exp.config import ConfigError
            from defcon_exp.run.sweep_checks import check_sweeper_node

            check_sweeper_node(OmegaConf.to_container(config.hydra.sweeper, resolve=False))
            try:
                from defcon_exp.run.sweeper import OptunaSweeperImpl
            except ImportError as err:
                raise ConfigError(f"hydra/sweeper=optuna needs Optuna ({err}); pip install "
                                  "'defcon_exp[search]'") from None

            self.impl = OptunaSweeperImpl(**self.kwargs)
            self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        with _one_line_errors():
            return self.impl.sweep(arguments)
