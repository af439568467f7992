"""What the attention modules of a trained model do on real inputs.

For each attention module (one per bottleneck) the input feature map is captured with a
forward hook on the block's last BatchNorm (``bn3``, whose output is what the attention
sees; the fused tail calls ``attention.channel_weights`` directly, so a hook on the
attention itself would not fire), and each module reports its own ``statistics(x)``:

- every attention: gated channel weight mean / std, and the entropy of the weights
  normalised over channels (``p_c = w_c / sum w``; also divided by ``log C``: 1 = uniform);
- DEFCON family: mean |learned offset|; tap ``n`` of channel ``c`` samples position
  ``c - k//2 + n + offset`` (plus the correlation shift for ``defcon_corr``), so the
  channel distance is ``|n - k//2 + offset|``: its mean, and the share of taps reaching
  further than the kernel half-width ``k//2`` by more than :data:`REACH_TOLERANCE`
  (beyond ECA's fixed window) and of taps sampling outside
  ``[0, C-1]`` (reading zero padding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "HIST_BINS",
    "REACH_TOLERANCE",
    "StageRaw",
    "attention_blocks",
    "attention_statistics",
    "capture_attention_inputs",
    "fixed_width",
    "format_table",
    "module_statistics",
    "reach_note",
    "stage_statistics",
    "summarise_raw",
    "weight_entropy",
]

HIST_BINS = 30
#: a tap counts as reaching beyond the kernel window (``|distance| > k//2``) or outside the
#: channels only by more than this many channels: then most of its linear-interpolation weight
#: falls on a channel the fixed window (ECA's) does not see, or on zero padding. Smaller
#: overshoots (0.001 channel from a near-zero offset) still read mostly the window's own edge.
REACH_TOLERANCE = 0.5


def attention_blocks(model: nn.Module) -> Iterator[tuple[int, int, nn.Module]]:
    """``(stage, block, residual block)`` for every block holding an attention module (the
    CIFAR ResNet's ``stages``, the ImageNet ResNets' ``layer1``-``layer4``)."""
    stages = getattr(model, "stages", None)
    if stages is None:
        stages = [getattr(model, f"layer{n}") for n in range(1, 5) if hasattr(model, f"layer{n}")]
    for stage_index, stage in enumerate(stages):
        for block_index, block in enumerate(stage):
            attention = getattr(block, "attention", None)
            if attention is not None and not isinstance(attention, nn.Identity):
                yield stage_index, block_index, block


def module_statistics(attention: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Raw per-element tensors for one module on input ``x: Tensor[B, C, H, W]``: what the
    module's own ``statistics(x)`` returns (the protocol of :mod:`defcon_exp.attention.base`:
    ``weights``; deformable modules also ``offset``, ``distance``, ``position``) plus the
    per-sample ``entropy`` of the normalised weights (when the module reports weights)."""
    out = dict(attention.statistics(x))
    if "weights" in out:
        out["weights"] = out["weights"].float()
        out["entropy"] = weight_entropy(out["weights"])
    return out


def weight_entropy(weights: Tensor) -> Tensor:
    """``Tensor[B, C]`` channel weights -> ``Tensor[B]``: entropy (nats) of each sample's
    weights normalised over channels, ``p_c = w_c / sum w`` (``log C`` = uniform)."""
    p = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return -(p * p.clamp_min(1e-12).log()).sum(dim=1)


def _histogram(values: Tensor, bins: int = HIST_BINS) -> dict[str, list[float]]:
    values = values.flatten().float()
    values = values[torch.isfinite(values)]  # NaN/Inf cannot be binned (histc refuses them)
    if values.numel() == 0:
        return {"edges": [], "counts": []}
    low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1e-6
    counts = torch.histc(values, bins=bins, min=low, max=high)
    edges = torch.linspace(low, high, bins + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def summarise_raw(
    raw: dict[str, list[Tensor]], kernel_sizes: list[int], channels: int
) -> dict[str, Any]:
    """Aggregate one stage's raw tensors (:class:`StageRaw` fields) into the numbers and
    histograms ``defcon-inspect`` prints (see the module docstring for their meaning)."""
    stats: dict[str, Any] = {}
    if raw.get("weights"):
        weights = torch.cat([w.flatten() for w in raw["weights"]])
        entropy = torch.cat(raw["entropy"])
        stats.update(
            weight_mean=float(weights.mean()),
            weight_std=float(weights.std(unbiased=False)),
            entropy_mean=float(entropy.mean()),
            entropy_normalised=float(entropy.mean()) / math.log(channels) if channels > 1 else None,
            weight_hist=_histogram(weights),
        )
    if raw.get("offset"):
        offset = torch.cat([o.flatten() for o in raw["offset"]])
        taps = list(zip(raw["distance"], raw["position"], kernel_sizes, strict=True))
        distance = torch.cat([dist.flatten() for dist, _, _ in taps])
        beyond = [(dist > k // 2 + REACH_TOLERANCE).flatten().float() for dist, _, k in taps]
        low, high = -REACH_TOLERANCE, channels - 1 + REACH_TOLERANCE
        outside = [((pos < low) | (pos > high)).flatten().float() for _, pos, _ in taps]
        stats.update(
            kernel_size=sorted(set(kernel_sizes)),
            offset_abs_mean=float(offset.abs().mean()),
            offset_abs_max=float(offset.abs().max()),
            share_beyond_half_width=float(torch.cat(beyond).mean()),
            share_outside_channels=float(torch.cat(outside).mean()),
            channel_distance_mean=float(distance.mean()),
            offset_hist=_histogram(offset),
            distance_hist=_histogram(distance),
        )
    return stats


def capture_attention_inputs(model: nn.Module, images: Tensor) -> dict[tuple[int, int], Tensor]:
    """Run ``images`` through ``model`` as it is (no mode change) and return the input
    ``Tensor[B, C, H, W]`` of every attention module, keyed by ``(stage, block)``."""
    captured: dict[tuple[int, int], Tensor] = {}
    handles = []
    for stage, index, block in attention_blocks(model):
        tap = getattr(block, getattr(block, "attention_input", "bn3"), None)
        # unfused block (no tap): the hook sits on the attention and keeps its own input
        hooked, use_output = (block.attention, False) if tap is None else (tap, True)

        def save(_module: nn.Module, args: Any, output: Any, key: tuple[int, int] = (stage, index),
                 use_output: bool = use_output) -> None:
            kept = output if use_output and isinstance(output, Tensor) else args[0]
            captured[key] = kept.detach()

        handles.append(hooked.register_forward_hook(save))
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
    return captured


@dataclass
class StageRaw:
    """One stage's raw statistics: ``raw[name]`` lists one tensor per block (see
    :func:`module_statistics`), ``blocks`` the ``(block index, bottleneck)`` pairs."""

    raw: dict[str, list[Tensor]]
    kernel_sizes: list[int]
    channels: int
    blocks: list[tuple[int, nn.Module]]

    def values(self, name: str) -> Tensor | None:
        """All blocks' ``name`` values flattened into one ``Tensor[N]`` (None if absent)."""
        parts = self.raw.get(name)
        return torch.cat([p.flatten() for p in parts]) if parts else None


@torch.no_grad()
def stage_statistics(model: nn.Module, images: Tensor) -> dict[int, StageRaw]:
    """Per stage (0-based), the raw attention statistics of ``images`` (model in its current
    mode: call ``model.eval()`` first for running-statistics behaviour)."""
    captured = capture_attention_inputs(model, images)
    stages: dict[int, StageRaw] = {}
    for stage, index, block in attention_blocks(model):
        x = captured[(stage, index)]
        entry = stages.setdefault(stage, StageRaw({}, [], x.shape[1], []))
        stats = module_statistics(block.attention, x)
        if "offset" in stats:  # Tensor[B, k, C]
            entry.kernel_sizes.append(int(stats["offset"].shape[1]))
        for name, value in stats.items():
            entry.raw.setdefault(name, []).append(value)
        entry.blocks.append((index, block))
    return stages


@torch.no_grad()
def attention_statistics(model: nn.Module, images: Tensor) -> dict[str, Any]:
    """Run ``images`` through ``model`` (eval mode) and summarise every stage's attention.

    Returns ``{"attention": class name or None, "num_images": B, "stages": {"1": {...}, ...}}``
    with per-stage aggregates over the stage's blocks (``blocks`` in each stage lists the
    per-block numbers without histograms).
    """
    model.eval()
    blocks = list(attention_blocks(model))
    result: dict[str, Any] = {
        "attention": type(blocks[0][2].attention).__name__ if blocks else None,
        "num_images": int(images.shape[0]),
        "stages": {},
    }
    for stage, entry in sorted(stage_statistics(model, images).items()):
        per_block = []
        for position, (index, _block) in enumerate(entry.blocks):
            one_raw = {name: [values[position]] for name, values in entry.raw.items()}
            k = [entry.kernel_sizes[position]] if entry.kernel_sizes else []
            one = summarise_raw(one_raw, k, entry.channels)
            per_block.append(
                {"block": index, **{n: v for n, v in one.items() if not n.endswith("_hist")}}
            )
        summary = summarise_raw(entry.raw, entry.kernel_sizes, entry.channels)
        summary.update(channels=entry.channels, num_blocks=len(entry.blocks), blocks=per_block)
        if entry.blocks and hasattr(entry.blocks[0][1].attention, "local_share"):
            summary["local_share"] = [float(b.attention.local_share) for _, b in entry.blocks]
        result["stages"][str(stage + 1)] = summary
    return result


def format_table(stats: dict[str, Any]) -> str:
    """The per-stage statistics as a fixed-width text table."""
    columns = [
        ("stage", None, "{}"),
        ("C", "channels", "{}"),
        ("k", "kernel_size", "{}"),
        ("|offset|", "offset_abs_mean", "{:.4f}"),
        (f"beyond k//2+{REACH_TOLERANCE:g}", "share_beyond_half_width", "{:.2%}"),
        ("outside C", "share_outside_channels", "{:.2%}"),
        ("|distance|", "channel_distance_mean", "{:.3f}"),
        ("w mean", "weight_mean", "{:.4f}"),
        ("w std", "weight_std", "{:.4f}"),
        ("entropy", "entropy_mean", "{:.4f}"),
        ("H/logC", "entropy_normalised", "{:.6f}"),
    ]
    rows = [[c[0] for c in columns]]
    for stage, values in stats["stages"].items():
        row = []
        for _title, key, fmt in columns:
            value = stage if key is None else values.get(key)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    return fixed_width(rows)


def fixed_width(rows: list[list[str]]) -> str:
    """``rows`` of cells (the first: the titles) as right-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def reach_note() -> str:
    """What the table's reach columns count (printed under it)."""
    return (
        f"beyond k//2+{REACH_TOLERANCE:g}: taps sampling more than {REACH_TOLERANCE:g} "
        "channel outside the kernel window (most interpolation weight on a channel "
        f"ECA's window does not see); outside C: more than {REACH_TOLERANCE:g} channel "
        "into the zero padding"
    )
