"""What a run records: one CSV row and TensorBoard scalars per epoch, step scalars, the
HParams record, and ``summary.json``. Rank 0 writes them; other ranks get :class:`NullRecords`.

The epoch metrics are named once, in :data:`~defcon_exp.engine.metrics.METRIC_NAMES`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from defcon_exp.engine.metrics import METRIC_NAMES, metric_keys
from defcon_exp.engine.writers import MetricsCSV, TensorBoardLogger, write_json

__all__ = ["NullRecords", "Records", "epoch_row", "summary_payload"]

log = logging.getLogger("defcon_exp.engine.fit")

Metrics = Mapping[str, Mapping[str, float]]


def epoch_row(
    epoch: int, global_step: int, metrics: Metrics, seconds: float, images: int
) -> dict[str, Any]:
    """The ``metrics.csv`` row of ``epoch`` (1-based): lr, ``<split>_<metric>``, time, img/s."""
    row: dict[str, Any] = {"epoch": epoch, "global_step": global_step, "lr": metrics["train"]["lr"]}
    for split, values in metrics.items():
        row.update({f"{split}_{name}": values[name] for name in metric_keys(values)})
    row.update(epoch_time_s=seconds, images_per_s=images / max(seconds, 1e-9))
    return row


class Records:
    """``metrics.csv`` and TensorBoard of one run dir (reopened on resume: rows and events
    after the resumed checkpoint are dropped, so curves stay continuous)."""

    def __init__(self, run_dir: Path, resumed_epoch: int | None, resumed_step: int) -> None:
        csv_path = run_dir / "metrics.csv"
        if resumed_epoch and not csv_path.exists():
            log.warning(
                "resume: %s is missing, so epochs 1-%d have no rows in it (only in TensorBoard "
                "and the log); new rows start at epoch %d",
                csv_path,
                resumed_epoch,
                resumed_epoch + 1,
            )
        self.csv = MetricsCSV(csv_path, resume_epoch=resumed_epoch)
        # events at the checkpoint's own step are valid; a crash's later events are purged
        purge = resumed_step + 1 if resumed_epoch is not None else None
        self.tb = TensorBoardLogger(run_dir / "tb", purge_step=purge)
        self.run_dir = run_dir

    def step(self, values: Mapping[str, float], global_step: int) -> None:
        self.tb.scalars(values, global_step)

    def histogram(self, tag: str, values: Tensor, global_step: int) -> None:
        self.tb.histogram(tag, values, global_step)

    def epoch(self, row: Mapping[str, Any], metrics: Metrics, global_step: int) -> None:
        self.csv.append(row)
        self.tb.scalars(
            {
                f"{split}/{name}": values[name]
                for split, values in metrics.items()
                for name in metric_keys(values)
            },
            global_step,
        )
        self.tb.scalars({"epoch": row["epoch"], "train/lr_epoch_end": row["lr"]}, global_step)
        self.tb.flush()

    def finish(self, summary: dict[str, Any], hparams: Mapping[str, Any], global_step: int) -> None:
        write_json(self.run_dir / "summary.json", summary)
        test = summary["test"]
        metrics = {f"hparam/test_{name}": test[name] for name in METRIC_NAMES}
        for key in ("best_val", "best_on_test"):
            if summary.get(key, {}).get("top1") is not None:
                split = "val" if key == "best_val" else "test"
                metrics[f"hparam/best_{split}_top1"] = summary[key]["top1"]
        self.tb.hparams(hparams, metrics, global_step)

    def flush(self) -> None:
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


class NullRecords(Records):
    """Records of ranks > 0: nothing is written."""

    def __init__(self) -> None:
        pass

    def step(self, values: Mapping[str, float], global_step: int) -> None:
        pass

    def histogram(self, tag: str, values: Tensor, global_step: int) -> None:
        pass

    def epoch(self, row: Mapping[str, Any], metrics: Metrics, global_step: int) -> None:
        pass

    def finish(self, summary: dict[str, Any], hparams: Mapping[str, Any], global_step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def summary_payload(
    model_name: str,
    test: Mapping[str, float],
    best: Mapping[str, Any],
    last_eval: Metrics,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """``summary.json``: ``test`` metrics, ``best_val`` (or ``best_on_test``), the last
    epoch's ``val`` metrics when there is a validation split, then ``run``'s fields
    (num_params, epochs, global_step, wall_time_s, images_per_s, run_dir, status...)."""
    payload: dict[str, Any] = {
        "model": model_name,
        "test": {name: test[name] for name in METRIC_NAMES},
    }
    prefix = "ema_" if best.get("weights") == "ema" else ""  # the selected weights' metrics
    best_block = {
        "epoch": best["epoch"],
        **{k: best["metrics"].get(f"{prefix}{k}") for k in METRIC_NAMES},
    }
    if best["split"] == "val":
        payload["best_val"] = best_block
        if "val" in last_eval:
            payload["val"] = {name: last_eval["val"][name] for name in METRIC_NAMES}
    else:
        payload["best_on_test"] = {
            **best_block,
            "note": "no validation split (data.val_size=0): this is the best epoch picked ON THE "
            "TEST SET, an optimistic number; the result is 'test' (final weights)",
        }
    payload.update(run)
    return payload
