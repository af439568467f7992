"""Analysis of finished (and unfinished) runs: the Table 1 report and attention inspection.

The package itself imports nothing: ``defcon_exp.config`` imports ``analysis.objectives``,
which must not pull in the report's data and torch imports (``defcon-train --help`` and config
errors answer before torch is imported); import the modules themselves.
"""
