"""defcon_exp's Optuna sweeper for Hydra (``hydra/sweeper=optuna`` in defcon-train's config).

Hydra finds plugins by importing every module of the ``hydra_plugins`` namespace package; this
package is shipped in the defcon_exp wheel. Optuna is imported only when a sweep starts (the
``search`` extra), so Hydra's plugin scan never fails without it.
"""
