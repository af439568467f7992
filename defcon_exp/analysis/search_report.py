"""The report of an Optuna search dir (``<hydra.sweep.dir>`` holding ``optuna.db``).

``search_report.md`` lists every trial (number, state, params, objective values, run dir), the
best trial (the Pareto front for several objectives) with the ``defcon-train`` command that
reruns it; ``search_trials.csv`` has the same rows plus each run's summary numbers; PNG plots
come from Optuna's own matplotlib visualisation: optimisation history, parameter importances
(PED-ANOVA, needs no scikit-learn) and, for several objectives, the Pareto front.
"""

from __future__ import annotations

import csv
import json
import logging
import shlex
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
#: task overrides the sweeper adds to each trial (not part of a rerun command)
SWEEPER_KEYS = ("search.storage", "search.study_name", "search.trial_number", "search.prune",
                "search.pruner", "resume")


def is_search_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an Optuna study written by ``hydra/sweeper=optuna``."""
    return (Path(path) / STUDY_FILE).is_file()


def rerun_command(run_dir: Path) -> str | None:
    """``defcon-train <the trial's overrides> hydra.mode=RUN`` (a single run of the same
    composition), from the trial's ``.hydra/overrides.yaml``."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    import yaml

    overrides = [o for o in yaml.safe_load(path.read_text()) or []
                 if o.partition("=")[0].lstrip("+") not in SWEEPER_KEYS]
    return shlex.join(["defcon-train", *overrides, "hydra.mode=RUN"])


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _rows(study: Any, search_dir: Path, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for trial in study.trials:
        run_dir = search_dir / str(trial.number)
        summary = _summary(run_dir)
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
        for i, name in enumerate(names):
            row[name] = trial.values[i] if trial.values else None
        row.update({f"param:{k}": v for k, v in trial.params.items()})
        row.update(
            status=summary.get("status"),
            epochs_run=len((run_dir / "metrics.csv").read_text().splitlines()) - 1
            if (run_dir / "metrics.csv").is_file() else None,
            val_top1_final=(summary.get("val") or {}).get("top1"),
            val_top1_best=(summary.get("best_val") or {}).get("top1"),
            val_loss_final=(summary.get("val") or {}).get("loss"),
            test_top1=(summary.get("test") or {}).get("top1"),
            num_params=summary.get("num_params"),
            images_per_s=summary.get("images_per_s"),
            run_dir=str(run_dir),
        )
        rows.append(row)
    return rows


def _plots(study: Any, out: Path, names: list[str]) -> dict[str, str]:
    """PNG name -> path, or -> the reason it could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    target = {} if len(names) == 1 else {"target": lambda t: t.values[0], "target_name": names[0]}
    jobs = {
        "search_history.png": lambda: ovm.plot_optimization_history(study, **target),
        "search_importances.png": lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), **target
        ),
    }
    if len(names) > 1:
        jobs["search_pareto.png"] = lambda: ovm.plot_pareto_front(study, target_names=names)
    done: dict[str, str] = {}
    for name, draw in jobs.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            figure = getattr(axes, "figure", None) or plt.gcf()
            figure.set_size_inches(7, 4.5)
            figure.tight_layout()
            figure.savefig(out / name, dpi=100)
            plt.close(figure)
            done[name] = str(out / name)
        except Exception as err:  # too few finished trials, a constant param...
            done[name] = f"not drawn: {type(err).__name__}: {err}"
            plt.close("all")
    return done


def write_search_report(search_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``search_report.md``, ``search_trials.csv`` and the plots (to ``out``, default the
    search dir). Returns ``{"studies", "rows", "best", "report_md", "report_csv", "plots"}``."""
    import optuna

    search_dir = Path(search_dir).absolute()
    out = Path(out) if out is not None else search_dir
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{search_dir / STUDY_FILE}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names_of = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if len(names_of) != 1:
        raise ValueError(f"{search_dir / STUDY_FILE} holds {len(names_of)} studies, expected 1")
    study = optuna.load_study(study_name=names_of[0], storage=storage)
    names = list(study.user_attrs.get("objectives") or [f"value_{i}" for i in range(len(study.directions))])
    rows = _rows(study, search_dir, names)
    with (out / "search_trials.csv").open("w", newline="") as handle:
        fields = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    best = [t.number for t in study.best_trials] if any(r["state"] == "COMPLETE" for r in rows) else []
    plots = _plots(study, out, names)
    md = _markdown(study, search_dir, names, rows, best, plots)
    (out / "search_report.md").write_text(md)
    return {"studies": names_of, "rows": rows, "best": best, "plots": plots,
            "report_md": out / "search_report.md", "report_csv": out / "search_trials.csv"}


def _markdown(study: Any, search_dir: Path, names: list[str], rows: list[dict[str, Any]],
              best: list[int], plots: dict[str, str]) -> str:
    directions = [d.name.lower() for d in study.directions]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines = [
        f"# Search {study.study_name} ({search_dir})", "",
        f"Objectives: {', '.join(f'{n} ({d})' for n, d in zip(names, directions, strict=True))}"
        " — validation metrics (the test set is never optimised).",
        f"Trials: {len(rows)} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}).", "",
    ]
    params = sorted({k for row in rows for k in row if k.startswith("param:")})
    header = ["trial", "state", *names, *(p[6:] for p in params), "epochs run", "test top1"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["trial"], row["state"], *(row[n] for n in names), *(row.get(p) for p in params),
                 row["epochs_run"], row["test_top1"]]
        lines.append("| " + " | ".join("" if c is None else f"{c:.6g}" if isinstance(c, float)
                                       else str(c) for c in cells) + " |")
    title = "Best trial" if len(names) == 1 else "Pareto front"
    lines += ["", f"## {title}", ""]
    for number in best or []:
        row = rows[number] if rows[number]["trial"] == number else next(r for r in rows if r["trial"] == number)
        values = ", ".join(f"{n} = {row[n]:.6g}" for n in names)
        lines += [f"Trial {number}: {values} (test top-1 {row['test_top1']}, for information: "
                  "not used to choose)", "", "```", rerun_command(Path(row["run_dir"])) or "?", "```", ""]
    if not best:
        lines.append("No finished trial yet.")
    lines += ["", "## Plots", ""]
    lines += [f"- ![{n}]({n})" if not p.startswith("not drawn") else f"- {n}: {p}"
              for n, p in plots.items()]
    return "\n".join(lines) + "\n"
