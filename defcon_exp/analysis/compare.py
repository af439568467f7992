"""How strongly the attention modules of several trained models agree on which channels
matter, on the same images (``defcon-compare``; docs/compare.md).

Per run, every attention module reports its channel weights through its own
``statistics(x)`` (the protocol of :mod:`defcon_exp.attention.base`). A stage's weight
matrix ``W[N, C]`` is the mean over the stage's blocks: every block of a stage adds its
scaled output to the same residual stream, so channel ``c`` of every block is the same
stream channel. For two runs, per stage:

- ``spearman_per_image``: Spearman's rank correlation of ``W_a[i]`` and ``W_b[i]``
  (``scipy.stats.spearmanr``) averaged over the images ``i`` (images where either vector is
  constant, an undefined correlation, are left out);
- ``spearman_of_means``: the rank correlation of the mean vectors ``W_a.mean(0)`` and
  ``W_b.mean(0)``;
- ``cka``: linear CKA (Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network
  Representations Revisited", ICML 2019) of ``W_a`` and ``W_b`` as ``[images, channels]``
  representations: ``<K_a, K_b>_F / (||K_a||_F ||K_b||_F)`` with ``K = W_c W_c^T`` the Gram
  matrix of the column-centred ``W_c``. 1 for a run with itself.

Spearman compares channel *indices*, so it means "the same channels" only where the runs'
channels correspond (checkpoints of one run, fine-tunes of one backbone); CKA compares how
the runs weight the *images* relative to each other and is invariant to a permutation (any
orthogonal map) of the channels, so it also compares independently trained networks.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import torch
from scipy import stats as scipy_stats
from torch import Tensor, nn

from defcon_exp.analysis.inspect import fixed_width, stage_statistics, summarise_raw, weight_entropy

__all__ = [
    "RunWeights",
    "class_channel_map",
    "collect_channel_weights",
    "compare_runs",
    "format_comparison",
    "linear_cka",
    "spearman",
    "spearman_per_image",
]


@dataclass
class RunWeights:
    """One run's channel weights on the compared images.

    Attributes:
        label: the run's name in tables and plots (unique among the compared runs).
        stages: stage (``"1"``...) -> ``Tensor[blocks, N, C]`` float32, every block's weights.
        info: what else to record about the run (checkpoint, model, epoch).
    """

    label: str
    stages: dict[str, Tensor]
    info: dict[str, Any]

    def matrix(self, stage: str) -> np.ndarray:
        """``float64 [N, C]``: the stage's weights averaged over its blocks."""
        return self.stages[stage].double().mean(0).numpy()


@torch.no_grad()
def collect_channel_weights(model: nn.Module, images: Tensor, batch_size: int = 64) -> dict[str, Tensor]:
    """Run ``images: Tensor[N, 3, H, W]`` through ``model`` in eval mode, ``batch_size`` at a
    time, and return per stage (``"1"``...) every block's weights ``Tensor[blocks, N, C]``
    (CPU, float32). Stages whose modules report no ``weights`` are left out; ``{}`` for a
    model without attention modules."""
    model.eval()
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, images.shape[0], batch_size):
        for stage, entry in stage_statistics(model, images[start : start + batch_size]).items():
            if entry.raw.get("weights"):
                weights = torch.stack([w.float().cpu() for w in entry.raw["weights"]])
                parts.setdefault(str(stage + 1), []).append(weights)
    return {stage: torch.cat(chunks, dim=1) for stage, chunks in sorted(parts.items())}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two ``[C]`` vectors; None when undefined (a constant
    vector) or when their lengths differ."""
    if a.shape != b.shape:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and returns nan
        return _finite(scipy_stats.spearmanr(a, b).statistic)


def spearman_per_image(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean over images of :func:`spearman` of the rows of ``a, b: [N, C]`` (undefined rows
    left out; None if all are undefined or the channel counts differ)."""
    if a.shape != b.shape:
        return None
    values = [v for v in (spearman(x, y) for x, y in zip(a, b, strict=True)) if v is not None]
    return float(np.mean(values)) if values else None


def linear_cka(a: np.ndarray, b: np.ndarray) -> float | None:
    """Linear CKA of ``a: [N, C_a]`` and ``b: [N, C_b]`` (the same N images; the channel
    counts may differ). None when either centred matrix is zero (all images weighted alike)."""
    a = a - a.mean(axis=0, keepdims=True)
    b = b - b.mean(axis=0, keepdims=True)
    gram_a, gram_b = a @ a.T, b @ b.T
    denominator = float(np.linalg.norm(gram_a) * np.linalg.norm(gram_b))
    if denominator <= 0.0:
        return None
    return _finite(float((gram_a * gram_b).sum()) / denominator)


def class_channel_map(weights: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[N, C]`` weights, ``[N]`` labels -> ``[num_classes, C]`` mean weight per class (NaN
    rows for classes without images)."""
    out = np.full((num_classes, weights.shape[1]), np.nan)
    for cls in range(num_classes):
        chosen = labels == cls
        if chosen.any():
            out[cls] = weights[chosen].mean(axis=0)
    return out


def stage_summary(blocks: Tensor) -> dict[str, Any]:
    """``Tensor[blocks, N, C]`` -> weight mean, std and entropy as ``defcon-inspect``
    computes them (over all blocks and images of the stage)."""
    raw = {"weights": list(blocks), "entropy": [weight_entropy(w) for w in blocks]}
    summary = summarise_raw(raw, [], blocks.shape[-1])
    return {k: summary[k] for k in ("weight_mean", "weight_std", "entropy_mean", "entropy_normalised")}


def _pair(a: RunWeights, b: RunWeights, stage: str) -> dict[str, Any]:
    wa, wb = a.matrix(stage), b.matrix(stage)
    return {
        "spearman_per_image": spearman_per_image(wa, wb),
        "spearman_of_means": spearman(wa.mean(axis=0), wb.mean(axis=0)),
        "cka": linear_cka(wa, wb),
    }


def compare_runs(runs: list[RunWeights], labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Every pair of ``runs`` per stage they share (see the module docstring).

    Returns ``{"runs": [...], "stages": {"1": {"channels", "summary", "pairs", "matrices"}}}``
    where ``matrices[metric]`` is the runs x runs table (the diagonal compares a run with
    itself) and ``pairs`` lists each unordered pair once; and ``class_maps``:
    ``{stage: {label: [num_classes, C]}}`` (numpy, for the plots and the ``.npz``).
    """
    shared = sorted(set.intersection(*(set(r.stages) for r in runs)), key=int)
    result: dict[str, Any] = {
        "runs": [{"label": r.label, **r.info} for r in runs],
        "stages": {},
        "class_maps": {},
    }
    metrics = ("cka", "spearman_per_image", "spearman_of_means")
    for stage in shared:
        table = {m: [[None] * len(runs) for _ in runs] for m in metrics}
        pairs = []
        for i, j in [(i, i) for i in range(len(runs))] + list(combinations(range(len(runs)), 2)):
            values = _pair(runs[i], runs[j], stage)
            for metric in metrics:
                table[metric][i][j] = table[metric][j][i] = values[metric]
            if i != j:
                pairs.append({"a": runs[i].label, "b": runs[j].label, **values})
        result["stages"][stage] = {
            "channels": {r.label: int(r.stages[stage].shape[-1]) for r in runs},
            "blocks": {r.label: int(r.stages[stage].shape[0]) for r in runs},
            "summary": {r.label: stage_summary(r.stages[stage]) for r in runs},
            "pairs": pairs,
            "matrices": table,
        }
        result["class_maps"][stage] = {
            r.label: class_channel_map(r.matrix(stage), labels, num_classes) for r in runs
        }
    return result


def _fmt(value: float | None, spec: str = "{:+.3f}") -> str:
    return "-" if value is None else spec.format(value)


def format_comparison(result: dict[str, Any]) -> str:
    """Two fixed-width tables: each run's weights per stage (mean, std, H/log C) and each
    pair's agreement per stage (Spearman per image, of the means, linear CKA)."""
    runs = [["stage", "run", "C", "w mean", "w std", "H/logC"]]
    pairs = [["stage", "run a", "run b", "spearman/img", "spearman(mean)", "CKA"]]
    for stage, values in result["stages"].items():
        for label, summary in values["summary"].items():
            runs.append([
                stage, label, str(values["channels"][label]), f"{summary['weight_mean']:.4f}",
                f"{summary['weight_std']:.4f}", _fmt(summary["entropy_normalised"], "{:.6f}"),
            ])
        for pair in values["pairs"]:
            pairs.append([
                stage, pair["a"], pair["b"], _fmt(pair["spearman_per_image"]),
                _fmt(pair["spearman_of_means"]), _fmt(pair["cka"], "{:.3f}"),
            ])
    return f"{fixed_width(runs)}\n\n{fixed_width(pairs)}"
