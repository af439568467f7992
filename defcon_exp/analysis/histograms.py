"""TensorBoard histograms of what the attention modules learn, logged during training (an
epoch hook of :func:`defcon_exp.engine.fit.fit`, built by the run layer).

Every ``every_n_epochs`` epochs a fixed probe batch (the first ``num_images`` images of the
validation split, or of the test split without one; normalised, not augmented) goes through
the model in eval mode, and per stage ``s`` these are written:

- histograms ``attention/stage{s}/weights`` (gated channel weights), and for the DEFCON
  family ``attention/stage{s}/offset`` (learned offsets) and
  ``attention/stage{s}/channel_distance`` (|sampled channel - own channel| per tap: how
  non-local the module has become);
- scalars ``attention/stage{s}/{weight_mean, entropy_normalised, offset_abs_mean,
  channel_distance_mean, share_beyond_half_width, share_outside_channels}`` (as
  ``defcon-inspect`` defines them).

The probe and its forward pass run inside :func:`torch.random.fork_rng`, and eval mode leaves
BatchNorm and the correlation buffers of ``defcon_corr`` untouched, so turning histograms on
or off does not change the training run (and resume stays exact).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.analysis.inspect import attention_blocks, stage_statistics, summarise_raw

#: histogram tag -> the raw statistic of :func:`defcon_exp.analysis.inspect.module_statistics`
HISTOGRAMS = {"weights": "weights", "offset": "offset", "channel_distance": "distance"}
SCALARS = (
    "weight_mean",
    "entropy_normalised",
    "offset_abs_mean",
    "channel_distance_mean",
    "share_beyond_half_width",
    "share_outside_channels",
)


@contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Restore the CPU (and ``device``'s CUDA) RNG state afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


class AttentionHistograms:
    """Logs the attention statistics of ``model`` on ``probe: Tensor[N, 3, H, W]``."""

    def __init__(self, model: nn.Module, probe: Tensor, every_n_epochs: int) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, received {every_n_epochs}")
        self.model, self.probe, self.every_n_epochs = model, probe, every_n_epochs

    @classmethod
    def create(
        cls,
        model: nn.Module,
        loader: Iterable,
        device: torch.device,
        every_n_epochs: int,
        num_images: int,
    ) -> AttentionHistograms | None:
        """None when disabled (``every_n_epochs`` or ``num_images`` 0) or when the model has
        no attention modules; else the logger with its probe batch taken from ``loader``."""
        if every_n_epochs <= 0 or num_images <= 0 or next(attention_blocks(model), None) is None:
            return None
        with preserved_rng(device):  # creating a loader iterator may draw a worker seed
            parts, have = [], 0
            for images, _labels in loader:
                parts.append(images[: num_images - have])
                have += parts[-1].shape[0]
                if have >= num_images:
                    break
        if not parts:
            return None
        probe = torch.cat(parts).to(device, non_blocking=True)
        return cls(model, probe, every_n_epochs)

    def __call__(
        self, epochs_done: int, step: int, metrics: Mapping[str, object], records: Any
    ) -> None:
        """The epoch hook: write the histograms and scalars into the run's ``records``
        (``records.histogram`` / ``records.step``) if ``epochs_done`` is a multiple of
        ``every_n_epochs``. Leaves the model in eval mode."""
        if epochs_done % self.every_n_epochs:
            return
        self.model.eval()
        with preserved_rng(self.probe.device):
            stages = stage_statistics(self.model, self.probe)
        for stage, entry in sorted(stages.items()):
            prefix = f"attention/stage{stage + 1}"
            for tag, name in HISTOGRAMS.items():
                values = entry.values(name)
                if values is not None:
                    records.histogram(f"{prefix}/{tag}", values, step)
            summary = summarise_raw(entry.raw, entry.kernel_sizes, entry.channels)
            records.step(
                {f"{prefix}/{k}": summary[k] for k in SCALARS if summary.get(k) is not None}, step
            )
