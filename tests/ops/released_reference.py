"""A slow, loop-by-loop transcription of the released code's deformable 1D sampling.

Written from a reading of ``dca_models/deform_conv_1d.py`` in
``vatsalag99/Deformable-Channel-Attention`` (``DeformConv1D.forward``), one output position
and one tap at a time with scalar tensor operations, keeping its arithmetic as written
(``p - (p - floor(p))`` for the snapped position, ``p * (1 - mask) + floor_p * mask``,
``torch.clamp`` on indices and positions, weights from the clamped values), so autograd
differentiates it the way it differentiates the release. Small shapes only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def released_sample(padded: Tensor, p: Tensor) -> Tensor:
    """One tap: the padded 1-D signal ``Tensor[Lp]`` read at scalar position ``p``."""
    last = padded.shape[0] - 1
    q_left = torch.floor(p.detach())
    q_right = q_left + 1
    q_left = torch.clamp(q_left, 0, last)
    q_right = torch.clamp(q_right, 0, last)
    # The release's mask: padding is the constructor's default 1, whatever the kernel size.
    mask = ((p < 1) | (p > last - 1)).to(p.dtype).detach()
    floor_p = p - (p - torch.floor(p))
    p = p * (1 - mask) + floor_p * mask
    p = torch.clamp(p, 0, last)
    g_left = 1 + (q_left - p)
    g_right = 1 - (q_right - p)
    return g_left * padded[int(q_left)] + g_right * padded[int(q_right)]


def deform_conv1d_released_loops(
    input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Tensor:
    """``input: Tensor[B, C_in, L]``, ``offset: Tensor[B, k, L]``, ``weight:
    Tensor[C_out, C_in, k]`` -> ``Tensor[B, C_out, L]``; every input channel is sampled at the
    same positions (the release has one channel; ``C_in > 1`` repeats it per channel)."""
    batch, in_channels, length = input.shape
    out_channels, _, k = weight.shape
    half = k // 2
    out = []
    for b in range(batch):
        rows = []
        for o in range(out_channels):
            values = []
            for c in range(length):
                total = input.new_zeros(())
                for i in range(in_channels):
                    zeros = input.new_zeros(half)
                    padded = torch.cat([zeros, input[b, i], zeros])
                    for n in range(k):
                        # _get_p_0: range(1, w + 1); _get_p_n: range(-(k-1)//2, (k-1)//2 + 1)
                        p = (c + 1) + (n + (-(k - 1) // 2)) + offset[b, n, c]
                        total = total + weight[o, i, n] * released_sample(padded, p)
                values.append(total if bias is None else total + bias[o])
            rows.append(torch.stack(values))
        out.append(torch.stack(rows))
    return torch.stack(out)
