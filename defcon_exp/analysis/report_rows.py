"""The rows of ``defcon-report``'s table: finished runs grouped by model (and scheduler, and
data set), test top-1 / top-5 mean ± std over seeds, parameters, FLOPs per image (built and
counted on the CPU), training images/s, and Welch's t-test of top-1 against the baselines."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from defcon_exp.analysis.runs import RunRecord
from defcon_exp.analysis.stats import WelchResult, mean_std, welch_t_test
from defcon_exp.data.registry import DATASETS

__all__ = ["ALPHA", "BASELINES", "MIN_SEEDS", "ReportRow", "build_rows", "count_flops"]

log = logging.getLogger(__name__)

#: rows fewer seeds than this are marked (too few for a meaningful std / t-test)
MIN_SEEDS = 3
#: every model is compared with these (when present)
BASELINES = ("resnet50", "eca")
ALPHA = 0.05
#: classes per dataset when the data config does not say


@dataclass
class ReportRow:
    """One table row: the finished runs of one model (and scheduler) aggregated over seeds."""

    model: str
    scheduler: str | None
    runs: list[RunRecord]
    unfinished: list[RunRecord]
    data: str = "?"
    several_data: bool = False  # the report spans several data sets: the label names it
    top1: tuple[float, float] = (math.nan, math.nan)
    top5: tuple[float, float] = (math.nan, math.nan)
    params: int | None = None
    flops: int | None = None
    images_per_s: float | None = None
    tests: dict[str, WelchResult] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        """Number of finished runs (seeds) in this row."""
        return len(self.runs)

    @property
    def few_seeds(self) -> bool:
        """Fewer than :data:`MIN_SEEDS` finished runs."""
        return self.n_seeds < MIN_SEEDS

    @property
    def top1_values(self) -> list[float]:
        """Test top-1 of every finished run."""
        return [r.test_top1 for r in self.runs if r.test_top1 is not None]

    @property
    def label(self) -> str:
        """``model``, ``model / scheduler``, plus `` (data)`` when the report spans data sets."""
        label = self.model if self.scheduler is None else f"{self.model} / {self.scheduler}"
        return f"{label} ({self.data})" if self.several_data else label


_FLOPS_CACHE: dict[str, tuple[int, int]] = {}


def count_flops(model_cfg: dict[str, Any], num_classes: int, image_size: int = 32) -> tuple[int, int]:
    """``(forward FLOPs per image of side image_size, trainable parameters)`` of the model
    ``model_cfg`` builds, counted on the CPU (:func:`defcon_exp.models.complexity.
    flops_per_image`: the deformable 1D op is not seen, a few kFLOPs) and cached per config."""
    key = json.dumps([model_cfg, num_classes, image_size], sort_keys=True, default=str)
    if key not in _FLOPS_CACHE:
        import torch

        from defcon_exp.models import count_parameters, model_from_config
        from defcon_exp.models.complexity import flops_per_image

        model = model_from_config(model_cfg, num_classes, torch.device("cpu"))
        _FLOPS_CACHE[key] = (flops_per_image(model, image_size), count_parameters(model))
    return _FLOPS_CACHE[key]


def _num_classes(config: dict[str, Any], summary: dict[str, Any] | None = None) -> int:
    data = config.get("data") or {}
    if data.get("num_classes"):
        return int(data["num_classes"])
    if (summary or {}).get("num_classes"):  # an image folder's class count is its folders'
        return int(summary["num_classes"])
    spec = DATASETS.get(str(data.get("name")))
    return spec.classes_for(data.get("num_classes")) if spec is not None else 100


def _image_size(config: dict[str, Any]) -> int:
    data = config.get("data") or {}
    spec = DATASETS.get(str(data.get("name")))
    return spec.eval_size(data) if spec is not None else 32


def build_rows(runs: Sequence[RunRecord], flops: bool = True) -> tuple[list[ReportRow], bool]:
    """Group ``runs`` into rows; returns ``(rows, split_by_scheduler)``.

    Rows are keyed by model, plus scheduler when the runs use more than one. Each row is
    compared with the ``resnet50`` and ``eca`` rows of the same scheduler (Welch, top-1).
    """
    schedulers = {r.scheduler for r in runs}
    by_scheduler = len(schedulers) > 1
    several_data = len({r.data for r in runs}) > 1
    groups: dict[tuple[str, str | None, str], list[RunRecord]] = {}
    for run in runs:
        key = (run.model, run.scheduler if by_scheduler else None, run.data)
        groups.setdefault(key, []).append(run)
    rows: list[ReportRow] = []
    for (model, scheduler, data), members in groups.items():
        done = sorted((r for r in members if r.done), key=lambda r: (r.seed is None, r.seed or 0))
        row = ReportRow(model, scheduler, done, [r for r in members if not r.done], data,
                        several_data)
        row.top1 = mean_std([r.test_top1 for r in done if r.test_top1 is not None])
        row.top5 = mean_std([r.test_top5 for r in done if r.test_top5 is not None])
        speeds = [r.images_per_s for r in done if r.images_per_s is not None]
        row.images_per_s = sum(speeds) / len(speeds) if speeds else None
        params = [r.num_params for r in done if r.num_params is not None]
        row.params = params[0] if params else None
        if flops:
            source = next((r for r in [*done, *row.unfinished] if r.config.get("model")), None)
            if source is not None:
                try:
                    row.flops, built_params = count_flops(
                        source.config["model"],
                        _num_classes(source.config, source.summary),
                        _image_size(source.config),
                    )
                    row.params = row.params if row.params is not None else built_params
                except Exception as err:  # a stale config must not stop the report
                    log.warning("FLOPs of %s: %s", model, err)
        rows.append(row)
    order = {name: i for i, name in enumerate(BASELINES)}
    rows.sort(key=lambda r: (r.data, str(r.scheduler), order.get(r.model, len(order)), r.model))
    for row in rows:
        for base in BASELINES:
            other = next(
                (o for o in rows
                 if o.model == base and o.scheduler == row.scheduler and o.data == row.data),
                None,
            )
            if other is not None and other is not row:
                row.tests[base] = welch_t_test(row.top1_values, other.top1_values)
    return rows, by_scheduler
