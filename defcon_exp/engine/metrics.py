"""Classification metrics accumulated on the device; one host sync per read-out."""

from __future__ import annotations

from collections.abc import Callable

import torch

from defcon_exp.engine.epoch_metrics import EPOCH_METRICS, METRIC_NAMES, EpochMetric, metric_keys

__all__ = ["EPOCH_METRICS", "METRIC_NAMES", "EpochMetric", "MetricAccumulator", "metric_keys"]


class MetricAccumulator:
    """Sums loss and top-1/top-5 hits as device tensors; :meth:`compute` syncs once.

    ``update(logits: Tensor[B, K], labels: Tensor[B], loss: Tensor[])`` where ``loss`` is the
    batch mean.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        #: the device-side running sums ``Tensor[M]``, in the order of :data:`EPOCH_METRICS`
        self.sums = torch.zeros(len(EPOCH_METRICS), dtype=torch.float64, device=device)
        self.count = 0  # samples seen so far: batch sizes are host metadata, no sync needed

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        """Add one batch: ``logits`` Tensor[B, K], ``labels`` Tensor[B], ``loss`` scalar mean."""
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices.eq(labels.view(-1, 1))  # [B, k]
        self.sums += torch.stack([m.batch_sum(logits, labels, loss, hits) for m in EPOCH_METRICS.values()])
        self.count += labels.shape[0]

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """``{"sums": Tensor[M] (CPU), "count": int}`` for a mid-epoch checkpoint (one sync)."""
        return {"sums": self.sums.detach().cpu().clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Continue from :meth:`state_dict` (a resumed epoch keeps its running metrics)."""
        sums = state["sums"]
        assert isinstance(sums, torch.Tensor)
        self.sums.copy_(sums.to(self.sums.device, torch.float64))
        self.count = int(state["count"])

    def compute(
        self, all_reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """``{name: value for each of METRIC_NAMES} | {"count": n}`` (accuracies in percent);
        one device sync.

        ``all_reduce(tensor, "sum")`` (a distributed run) first sums the loss, hit and
        sample counts over all processes, so the result is over the whole data set.
        """
        if all_reduce is None:
            sums, count = self.sums.tolist(), self.count
        else:
            counted = torch.tensor([self.count], dtype=torch.float64, device=self.device)
            *sums, total = all_reduce(torch.cat([self.sums, counted]), "sum").tolist()
            count = int(total)
        values = {
            name: metric.scale * total_sum / count if count else float("nan")
            for (name, metric), total_sum in zip(EPOCH_METRICS.items(), sums, strict=True)
        }
        return {**values, "count": int(count)}
