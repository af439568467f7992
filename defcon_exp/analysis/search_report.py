"""The report of an Optuna search dir (``<hydra.sweep.dir>`` holding ``optuna.db``).

``search_report.md`` lists every trial (number, state, params, objective values, run dir), the
best trial (the Pareto front for several objectives) with the ``defcon-train`` command that
reruns it; ``search_trials.csv`` has the same rows plus each run's summary numbers; PNG plots
come from Optuna's own matplotlib visualisation: optimisation history, parameter importances
(PED-ANOVA, needs no scikit-learn) and, for several objectives, the Pareto front.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path
from typing import Any

from defcon_exp.analysis.objectives import TRIAL_KEYS
from defcon_exp.analysis.report_csv import write_csv
from defcon_exp.analysis.report_plots import save_figure
from defcon_exp.analysis.runs import last_error, read_summary
from defcon_exp.analysis.study_file import open_read_only, study_file_problem

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
#: completed trials below which parameter importances are not drawn (PED-ANOVA compares the
#: best 10% of the trials with all of them: with fewer, every parameter looks alike)
MIN_IMPORTANCE_TRIALS = 10
#: task overrides the sweeper adds to each trial (not part of a rerun command): the trial keys
#: and ``resume=auto``
SWEEPER_KEYS = (*TRIAL_KEYS, "resume")


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


def _epochs_run(run_dir: Path) -> int | None:
    try:
        return len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    except (OSError, ValueError):
        return None


def _rows(study: Any, search_dir: Path, names: list[str],
          skipped: list[str]) -> list[dict[str, Any]]:
    rows = []
    for trial in study.trials:
        run_dir = search_dir / str(trial.number)
        summary, damaged = read_summary(run_dir)
        if damaged:
            skipped.append(damaged)
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name,
                               "error": trial.user_attrs.get("error")}
        for i, name in enumerate(names):
            row[name] = trial.values[i] if trial.values else None
        row.update({f"param:{k}": v for k, v in trial.params.items()})
        row.update(
            status=summary.get("status"),
            epochs_run=_epochs_run(run_dir),
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


def _plot_jobs(study: Any, names: list[str]) -> dict[str, tuple[Any, str | None]]:
    """PNG name -> (draw function, or None with the reason it would mean nothing)."""
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # the axis names the objective (optuna says "Objective Value")
    target: dict[str, Any] = {"target_name": names[0]}
    if len(names) > 1:
        target["target"] = lambda t: t.values[0]
    varied = sorted(k for k in {k for t in done for k in t.params}
                    if len({repr(t.params.get(k)) for t in done}) > 1)
    none_done = "no completed trial yet"
    importances = None
    if len(done) < MIN_IMPORTANCE_TRIALS:
        importances = (f"{len(done)} completed trials, importances need at least "
                       f"{MIN_IMPORTANCE_TRIALS} (with fewer every parameter looks alike)")
    elif not varied:
        importances = "no parameter varied among the completed trials"
    jobs: dict[str, tuple[Any, str | None]] = {
        "search_history.png": (lambda: ovm.plot_optimization_history(study, **target),
                               none_done if not done else None),
        "search_importances.png": (lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=varied,
            **target), importances),
    }
    if len(names) > 1:
        jobs["search_pareto.png"] = (lambda: ovm.plot_pareto_front(study, target_names=names),
                                     None if len(done) >= 2 else
                                     f"{len(done)} completed trials, a front needs at least 2")
    return jobs


def _plots(study: Any, out: Path, names: list[str]) -> dict[str, str]:
    """PNG name -> its path, or -> ``not drawn: <why>``. Parameters that never varied are
    left out of the importances (their importance would be noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done: dict[str, str] = {}
    for name, (draw, skip) in _plot_jobs(study, names).items():
        if skip is not None:
            done[name] = f"not drawn: {skip}"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            figure = getattr(axes, "figure", None) or plt.gcf()
            figure.set_size_inches(7, 4.5)
            figure.tight_layout()
            done[name] = save_figure(plt, figure, out / name, dpi=100)
        except Exception as err:  # Optuna refuses (e.g. a degenerate study)
            done[name] = f"not drawn: {type(err).__name__}: {err}"
            plt.close("all")
    return done


def write_search_report(search_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``search_report.md``, ``search_trials.csv`` and the plots (to ``out``, default the
    search dir). Returns ``{"studies", "rows", "best", "report_md", "report_csv", "plots"}``."""
    import optuna

    search_dir = Path(search_dir).absolute()
    out = Path(out) if out is not None else search_dir
    db = search_dir / STUDY_FILE
    problem = study_file_problem(db)
    if problem is not None:  # checked before anything is opened for writing
        raise ValueError(f"{db} {problem}; nothing was written (pass a search dir made by "
                         "hydra/sweeper=optuna, or move the file away)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_read_only(db)
    names_of = optuna.get_all_study_names(storage)
    if len(names_of) != 1:
        raise ValueError(f"{db} holds {len(names_of)} studies, expected 1")
    study = optuna.load_study(study_name=names_of[0], storage=storage)
    names = list(study.user_attrs.get("objectives") or [f"value_{i}" for i in range(len(study.directions))])
    skipped: list[str] = []
    rows = _rows(study, search_dir, names, skipped)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "search_trials.csv", rows, list(dict.fromkeys(k for row in rows for k in row)))
    best = [t.number for t in study.best_trials] if any(r["state"] == "COMPLETE" for r in rows) else []
    plots = _plots(study, out, names)
    md = _markdown(study, search_dir, names, rows, best, plots)
    (out / "search_report.md").write_text(md)
    return {"studies": names_of, "rows": rows, "best": best, "plots": plots, "skipped": skipped,
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
    lines += _failed_section(rows)
    lines += ["", "## Plots", ""]
    lines += [f"- ![{n}]({n})" if not p.startswith("not drawn") else f"- {n}: {p}"
              for n, p in plots.items()]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    constant = [p[6:] for p in params if len({repr(r.get(p)) for r in done}) == 1]
    if done and constant and not plots.get("search_importances.png", "").startswith("not drawn"):
        lines += ["", f"Never varied among the completed trials, so left out of the importances: "
                  f"{', '.join(constant)}."]
    return "\n".join(lines) + "\n"


def _failed_section(rows: list[dict[str, Any]]) -> list[str]:
    """Each FAIL trial with its error line (recorded by the sweeper; for older studies the
    last ``[ERROR]`` line of the trial's train.log)."""
    failed = [r for r in rows if r["state"] == "FAIL"]
    if not failed:
        return []
    lines = ["", "## Failed trials", ""]
    for row in failed:
        error = row.get("error") or last_error(Path(row["run_dir"])) or "no error recorded"
        lines.append(f"- trial {row['trial']} (`{row['run_dir']}`): {error}")
    return lines
