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

__all__ = ["TB_GROUPS", "TB_LAYOUT", "NullRecords", "Records", "epoch_row", "summary_payload",
           "summary_text", "tb_dir", "tb_tag"]

log = logging.getLogger("defcon_exp.engine.fit")

Metrics = Mapping[str, Mapping[str, float]]

#: TensorBoard tag groups. TensorBoard sorts groups by name, and these names sort in the order
#: a reader wants them: loss, top1, top5, then trainer (lr and speed); only ``attention/...``
#: (per-stage statistics) sorts before them. The CUSTOM SCALARS tab shows every group in the
#: intended order, each metric's splits in one chart (:data:`TB_LAYOUT`).
TB_GROUPS = {"loss": "loss", "top1": "top1", "top5": "top5", "lr": "trainer", "speed": "trainer"}
#: the CUSTOM SCALARS layout: category -> chart title -> tag regex (one chart, several lines)
TB_LAYOUT = {
    "1. loss and accuracy (every split in one chart)": {
        "loss": ["Multiline", [r"^loss/(train|val|test)(_ema|_dominant)?$"]],
        "top-1 (%)": ["Multiline", [r"^top1/"]],
        "top-5 (%)": ["Multiline", [r"^top5/"]],
    },
    "2. trainer": {
        "learning rate": ["Multiline", [r"^trainer/lr$"]],
        "loss per logging interval": ["Multiline", [r"^loss/train_step$"]],
        "training images/s (machine-load dependent)": ["Multiline", [r"^trainer/images_per_s$"]],
    },
    "3. attention (per stage; histograms in the HISTOGRAMS tab)": {
        "mean channel weight": ["Multiline", [r"^attention/stage\d+/weight_mean$"]],
        "normalised weight entropy": ["Multiline", [r"^attention/stage\d+/entropy_normalised$"]],
        "mean |offset| (DEFCON)": ["Multiline", [r"^attention/stage\d+/offset_abs_mean$"]],
    },
}


def tb_tag(tag: str) -> str:
    """The TensorBoard tag of a record name: ``<split>/<metric>`` -> ``<group>/<split>``
    (``val/top1`` -> ``top1/val``), ``train/loss_step`` -> ``loss/train_step``,
    ``train/lr`` -> ``trainer/lr``, ``val/ema_top1`` -> ``top1/val_ema``,
    ``train/top1_dominant`` -> ``top1/train_dominant``; other names
    (``attention/stage1/...``) as they are."""
    split, _, name = tag.partition("/")
    if name.startswith("ema_") and name[4:] in TB_GROUPS:
        return f"{TB_GROUPS[name[4:]]}/{split}_ema"
    if name.endswith("_dominant") and name.removesuffix("_dominant") in TB_GROUPS:
        return f"{TB_GROUPS[name.removesuffix('_dominant')]}/{split}_dominant"
    if tag == "train/lr":
        return f"{TB_GROUPS['lr']}/lr"
    if name == "loss_step":
        return f"{TB_GROUPS['loss']}/{split}_step"
    if name in TB_GROUPS and "/" not in name:
        return f"{TB_GROUPS[name]}/{split}"
    return tag


def tb_dir(run_dir: Path, tb_name: str | None) -> Path:
    """Where the run's event files go: ``tb/<tb_name>`` (TensorBoard shows that path as the
    run's name: model and sweep overrides), the existing one on resume, and ``tb/`` itself for
    runs that wrote there before (or without a name)."""
    root = run_dir / "tb"
    if tb_name is None or any(root.glob("events.out.tfevents.*")):
        return root
    existing = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return existing[0] if existing else root / tb_name


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

    def __init__(
        self, run_dir: Path, resumed_epoch: int | None, resumed_step: int, tb_name: str | None = None
    ) -> None:
        csv_path = run_dir / "metrics.csv"
        if resumed_epoch and not csv_path.exists():
            log.warning("resume: %s is missing, so epochs 1-%d have no rows in it (only in "
                        "TensorBoard and the log); new rows start at epoch %d", csv_path,
                        resumed_epoch, resumed_epoch + 1)
        self.csv = MetricsCSV(csv_path, resume_epoch=resumed_epoch)
        # events at the checkpoint's own step are valid; a crash's later events are purged
        purge = resumed_step + 1 if resumed_epoch is not None else None
        self.tb = TensorBoardLogger(tb_dir(run_dir, tb_name), purge_step=purge)
        self.tb.add_custom_scalars(TB_LAYOUT)
        self.run_dir = run_dir
        self.curve_splits: set[str] = set()

    def step(self, values: Mapping[str, float], global_step: int) -> None:
        self.tb.scalars({tb_tag(tag): value for tag, value in values.items()}, global_step)

    def histogram(self, tag: str, values: Tensor, global_step: int) -> None:
        self.tb.histogram(tb_tag(tag), values, global_step)

    def epoch(self, row: Mapping[str, Any], metrics: Metrics, global_step: int) -> None:
        self.csv.append(row)
        self.curve_splits |= set(metrics)
        self.step({f"{split}/{name}": values[name] for split, values in metrics.items()
                   for name in metric_keys(values)}, global_step)
        speed = TB_GROUPS["speed"]
        self.tb.scalars(
            {f"{speed}/images_per_s": row["images_per_s"], f"{speed}/epoch_time_s": row["epoch_time_s"]},
            global_step,
        )
        self.tb.flush()

    def finish(self, summary: dict[str, Any], hparams: Mapping[str, Any], global_step: int) -> None:
        """``summary.json``; in TensorBoard the HParams record and a TEXT summary. With a
        validation split the test set is evaluated once: its numbers go into the HParams
        table (columns ``test/<metric>``) and the text, not into one-point charts."""
        write_json(self.run_dir / "summary.json", summary)
        test = {f"test/{name}": summary["test"][name] for name in METRIC_NAMES}
        curves = "val" if "val" in self.curve_splits else "test"
        metrics = {tb_tag(f"{curves}/{name}"): None for name in METRIC_NAMES}
        # the HParams table shows each metric tag's last value: no hparam/* duplicates
        self.tb.hparams({**hparams, **(test if curves == "val" else {})}, metrics)
        self.tb.add_text("summary", summary_text(summary), global_step=global_step)

    def flush(self) -> None:
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


class NullRecords(Records):
    """Records of ranks > 0: nothing is written."""

    def __init__(self) -> None:
        pass

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        """Write nothing (every writing method of :class:`Records`)."""

    step = histogram = epoch = finish = flush = close = _nothing


def summary_text(summary: Mapping[str, Any]) -> str:
    """The run's result as a Markdown table (TensorBoard's TEXT tab)."""
    rows = [("test", summary.get("test") or {})]
    for key in ("best_val", "val", "best_on_test"):
        if isinstance(summary.get(key), Mapping):
            rows.append((key, summary[key]))
    lines = ["| | top-1 (%) | top-5 (%) | loss | epoch |", "|---|---|---|---|---|"]
    for name, values in rows:
        cells = [values.get("top1"), values.get("top5"), values.get("loss")]
        shown = ["-" if v is None else f"{v:.2f}" if i < 2 else f"{v:.4f}"
                 for i, v in enumerate(cells)]
        lines.append(f"| {name} | {' | '.join(shown)} | {values.get('epoch', '')} |")
    status = summary.get("status", "finished")
    reason = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    lines += ["", f"{summary.get('model')}: {status}{reason}, {summary.get('epochs_done')} of "
              f"{summary.get('epochs')} epochs"]
    return "\n".join(lines)


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
