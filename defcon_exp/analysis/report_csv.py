"""``report.csv`` of ``defcon-report``: the table's numbers, unrounded, one record per row."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["csv_records", "write_csv"]


def csv_records(
    rows: Sequence[Any], baselines: Sequence[str], alpha: float
) -> list[dict[str, Any]]:
    """One ``report.csv`` record per report row (:class:`~defcon_exp.analysis.report.ReportRow`):
    the numbers of ``report.md`` unrounded, and each Welch test against ``baselines``
    (significant at ``alpha``); NaN as an empty cell."""
    out = []
    for row in rows:
        record: dict[str, Any] = {
            "model": row.model,
            "data": row.data,
            "scheduler": row.scheduler if row.scheduler is not None else "",
            "n_seeds": row.n_seeds,
            "seeds": " ".join(str(r.seed) for r in row.runs),
            "few_seeds": int(row.few_seeds),
            "n_unfinished": len(row.unfinished),
            "top1_mean": row.top1[0],
            "top1_std": row.top1[1],
            "top5_mean": row.top5[0],
            "top5_std": row.top5[1],
            "params": row.params if row.params is not None else "",
            "flops_per_image": row.flops if row.flops is not None else "",
            "train_images_per_s": row.images_per_s if row.images_per_s is not None else "",
        }
        for base in baselines:
            result = row.tests.get(base)
            for name in ("diff", "t", "df", "p"):
                record[f"vs_{base}_{name}"] = getattr(result, name) if result else ""
            significant = result.significant(alpha) if result else None
            record[f"vs_{base}_significant"] = "" if significant is None else int(significant)
        out.append({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return out


def write_csv(path: Path, records: Sequence[dict[str, Any]], fieldnames: list[str]) -> Path:
    """``records`` as a CSV file with a header row; the path."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)
    return path
