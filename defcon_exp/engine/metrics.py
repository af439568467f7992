"""Classification metrics accumulated on the device; one host sync per read-out."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: the epoch metrics, in the order of :attr:`MetricAccumulator.sums`; CSV columns, TensorBoard
#: tags and the summary are named from this tuple
METRIC_NAMES: tuple[str, ...] = ("loss", "top1", "top5")


def metric_keys(values: dict[str, float] | object) -> list[str]:
    """The metric entries of one split's dict, in its order: ``METRIC_NAMES``, their
    ``ema_`` twins (weight EMA) and ``_dominant`` variants (train top-k under Mixup/CutMix)."""
    return [
        key
        for key in values  # type: ignore[attr-defined]
        if key.removeprefix("ema_").removesuffix("_dominant") in METRIC_NAMES
    ]


class MetricAccumulator:
    """Sums loss and top-1/top-5 hits as device tensors; :meth:`compute` syncs once.

    ``update(logits: Tensor[B, K], labels: Tensor[B], loss: Tensor[])`` where ``loss`` is the
    batch mean.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, top1, top5
        self._count = 0  # batch sizes are host metadata: no sync needed

    def reset(self) -> None:
        """Zero the sums."""
        self._sums.zero_()
        self._count = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        """Add one batch: ``logits`` Tensor[B, K], ``labels`` Tensor[B], ``loss`` scalar mean."""
        n = labels.shape[0]
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices  # [B, k]
        hits = topk.eq(labels.view(-1, 1))
        batch = torch.stack(
            [
                loss.detach().double() * n,
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
            ]
        )
        self._sums += batch
        self._count += n

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """``{"sums": Tensor[3] (CPU), "count": int}`` for a mid-epoch checkpoint (one sync)."""
        return {"sums": self._sums.detach().cpu().clone(), "count": self._count}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Continue from :meth:`state_dict` (a resumed epoch keeps its running metrics)."""
        sums = state["sums"]
        assert isinstance(sums, torch.Tensor)
        self._sums.copy_(sums.to(self._sums.device, torch.float64))
        self._count = int(state["count"])

    @property
    def sums(self) -> torch.Tensor:
        """The device-side running sums ``Tensor[3]``: loss * n, top-1 hits, top-5 hits."""
        return self._sums

    @property
    def count(self) -> int:
        """Samples seen so far (host-side)."""
        return self._count

    def compute(
        self, all_reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """``{"loss", "top1", "top5", "count"}`` (accuracies in percent); one device sync.

        ``all_reduce(tensor, "sum")`` (a distributed run) first sums the loss, hit and
        sample counts over all processes, so the result is over the whole data set.
        """
        if all_reduce is None:
            loss_sum, top1, top5 = self._sums.tolist()
            count = self._count
        else:
            counted = torch.tensor([self._count], dtype=torch.float64, device=self.device)
            summed = all_reduce(torch.cat([self._sums, counted]), "sum")
            loss_sum, top1, top5, total = summed.tolist()
            count = int(total)
        if count == 0:
            return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "count": 0}
        return {
            "loss": loss_sum / count,
            "top1": 100.0 * top1 / count,
            "top5": 100.0 * top5 / count,
            "count": int(count),
        }
