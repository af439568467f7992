"""defcon-inspect's numbers and pictures say what they count: a reach tolerance of half a
channel (hand-worked cases), titled and labelled PNGs."""

from __future__ import annotations

import pytest
import torch

from defcon_exp.analysis.inspect import REACH_TOLERANCE, format_table, summarise_raw


def test_reach_counts_only_taps_half_a_channel_beyond_the_window() -> None:
    assert REACH_TOLERANCE == 0.5
    # k = 3 (k//2 = 1), 8 channels; one image, tap distances and sampled positions by hand
    distance = torch.tensor([[[1.0, 1.001, 1.49, 1.51]]])  # Tensor[B=1, k=1 shown, 4 taps]
    position = torch.tensor([[[-0.4, 0.0, 7.49, 7.6]]])  # 7.6 > C-1 + 0.5: reads padding
    raw = {"offset": [torch.zeros(1, 1, 4)], "distance": [distance], "position": [position]}
    stats = summarise_raw(raw, [3], channels=8)
    assert stats["share_beyond_half_width"] == pytest.approx(1 / 4)  # only 1.51
    assert stats["share_outside_channels"] == pytest.approx(1 / 4)  # only 7.6
    table = format_table({"stages": {"1": {**stats, "channels": 8}}})
    assert "beyond k//2+0.5" in table.splitlines()[0] and "25.00%" in table


def test_stage_png_has_a_title_with_model_run_epoch_and_axis_labels() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from defcon_exp.analysis.inspect_plots import stage_figure

    hist = {"edges": [0.0, 1.0, 2.0], "counts": [3.0, 1.0]}
    stats = {"checkpoint": "/x/multirun/t1/3/checkpoints/best.pt", "model": "defcon", "epoch": 7,
             "num_images": 256, "split": "test"}
    values = {"weight_hist": hist, "offset_hist": hist, "distance_hist": hist, "kernel_size": [5],
              "channels": 256}
    fig = stage_figure(stats, "2", values)
    assert fig._suptitle.get_text() == "defcon (run 3), epoch 7, stage 2 (C=256): 256 test images"
    axes = fig.get_axes()
    assert [ax.get_xlabel() for ax in axes] == [
        "gated channel weight", "offset (channels)", "|sampled channel - own channel|"]
    assert all(ax.get_ylabel().startswith("count") for ax in axes)
    assert [line.get_xdata()[0] for line in axes[2].get_lines()] == [2]  # k//2 marked
