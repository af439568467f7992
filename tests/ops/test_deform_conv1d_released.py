"""``deform_conv1d_released``: hand-computed edge cases, the loop transcription, gradients."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from defcon_exp.ops import deform_conv1d, deform_conv1d_released

from .released_reference import deform_conv1d_released_loops


def tap_values(signal: list[float], offsets: dict[tuple[int, int], float], k: int) -> torch.Tensor:
    """``Tensor[k, L]``: what each tap samples (float64), read with a one-hot kernel per tap."""
    length = len(signal)
    x = torch.tensor(signal, dtype=torch.float64).view(1, 1, length)
    offset = torch.zeros(1, k, length, dtype=torch.float64)
    for (n, c), value in offsets.items():
        offset[0, n, c] = value
    rows = []
    for n in range(k):
        weight = torch.zeros(1, 1, k, dtype=torch.float64)
        weight[0, 0, n] = 1
        rows.append(deform_conv1d_released(x, offset, weight)[0, 0])
    return torch.stack(rows)


def test_k3_both_edges_by_hand():
    # C = 6, x = 1..6, pad k//2 = 1: padded xp = [0, 1, 2, 3, 4, 5, 6, 0] (Lp = 8).
    # Tap n at channel c sits at p = c + 1 + (n - 1) + offset = c + n + offset.
    # Edge mask (padding 1 whatever k): p < 1 or p > Lp - 2 = 6 -> snap to floor(p).
    offsets = {(0, 0): 0.5, (1, 0): -0.25, (2, 0): 0.5, (0, 5): 0.5, (1, 5): 0.5, (2, 5): -0.25}
    taps = tap_values([1, 2, 3, 4, 5, 6], offsets, 3)
    # c = 0: n=0 p=0.5 masked -> xp[0] = 0; n=1 p=0.75 masked -> xp[0] = 0 (our DCN op:
    # 0.75 * x0 = 0.75); n=2 p=2.5 -> 0.5 * xp[2] + 0.5 * xp[3] = 2.5.
    assert taps[:, 0].tolist() == [0.0, 0.0, 2.5]
    # c = 5: n=0 p=5.5 -> 0.5 * 5 + 0.5 * 6 = 5.5; n=1 p=6.5 masked -> floor 6 -> xp[6] = 6
    # (the last channel, not interpolated towards the zero pad); n=2 p=6.75 masked -> 6.
    assert taps[:, 5].tolist() == [5.5, 6.0, 6.0]
    # c = 2, no offset: centred window, channels 1, 2, 3 -> values 2, 3, 4.
    assert taps[:, 2].tolist() == [2.0, 3.0, 4.0]


def test_k5_both_edges_by_hand():
    # C = 7, x = 1..7, pad 2: xp = [0, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0] (Lp = 11).
    # p = c + 1 + (n - 2) + offset = c + n - 1 + offset; mask p < 1 or p > 9.
    # Channel of padded index j is j - 2, so the zero-offset window of channel c is
    # c-3 .. c+1: the centre tap reads channel c - 1 (off-centre by one).
    offsets = {(1, 0): 0.75, (2, 0): 0.5, (3, 0): 0.25, (4, 0): -1.5,
               (1, 6): 0.5, (2, 6): 1.25, (3, 6): 1.5, (4, 6): -0.5}  # fmt: skip
    taps = tap_values([1, 2, 3, 4, 5, 6, 7], offsets, 5)
    # c = 0: n=0 p=-1 masked, floor -1: q_left = q_right = 0, both weights 1 -> 2 * xp[0] = 0;
    # n=1 p=0.75 masked -> xp[0] = 0; n=2 p=1.5 -> 0.5*xp[1] + 0.5*xp[2] = 0.5;
    # n=3 p=2.25 -> 0.75*1 + 0.25*2 = 1.25; n=4 p=1.5 -> 0.5.
    assert taps[:, 0].tolist() == [0.0, 0.0, 0.5, 1.25, 0.5]
    # c = 6: n=0 p=5 -> xp[5] = 4; n=1 p=6.5 -> 0.5*5 + 0.5*6 = 5.5; n=2 p=8.25 ->
    # 0.75*7 + 0.25*0 = 5.25; n=3 p=9.5 masked -> floor 9 -> xp[9] = 0; n=4 p=8.5 -> 3.5.
    assert taps[:, 6].tolist() == [4.0, 5.5, 5.25, 0.0, 3.5]
    # c = 3, no offset: channels 0..4 (centre tap on channel 2, not 3).
    assert taps[:, 3].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_k7_both_edges_by_hand():
    # C = 8, x = 1..8, pad 3: xp[3..10] = 1..8, zeros at 0..2 and 11..13 (Lp = 14).
    # p = c + n - 2 + offset; mask p < 1 or p > 12; centre tap reads channel c - 2.
    offsets = {(1, 0): 0.5, (2, 0): 0.5, (4, 0): 0.5, (5, 0): 0.25,
               (1, 7): 0.5, (3, 7): 0.75, (4, 7): 3.5, (5, 7): 0.5, (6, 7): 3.0}  # fmt: skip
    taps = tap_values([1, 2, 3, 4, 5, 6, 7, 8], offsets, 7)
    # c = 0: n=0 p=-2 masked -> 2 * xp[0] = 0; n=1 p=-0.5 masked -> 0; n=2 p=0.5 masked -> 0;
    # n=3 p=1 -> xp[1] = 0; n=4 p=2.5 -> 0.5*0 + 0.5*1 = 0.5; n=5 p=3.25 -> 0.75*1 + 0.25*2
    # = 1.25; n=6 p=4 -> xp[4] = 2.
    assert taps[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.5, 1.25, 2.0]
    # c = 7: n=0 p=5 -> 3; n=1 p=6.5 -> 4.5; n=2 p=7 -> 5; n=3 p=8.75 -> 0.25*6 + 0.75*7
    # = 6.75; n=4 p=12.5 masked -> xp[12] = 0; n=5 p=10.5 -> 0.5*8 + 0.5*0 = 4;
    # n=6 p=14 masked -> clamped to 13 twice -> 2 * xp[13] = 0.
    assert taps[:, 7].tolist() == [3.0, 4.5, 5.0, 6.75, 0.0, 4.0, 0.0]


def test_k1_has_no_padding_and_reads_the_next_channel():
    # k = 1: no padding (Lp = C = 6), base p = c + 1, mask p < 1 or p > 4. Channel c reads
    # channel c + 1. c = 4: p = 5 = Lp - 1 is masked, floor 5, the right neighbour 6 clamps
    # onto 5 too, weights 1 + (5 - 5) = 1 and 1 - (5 - 5) = 1 -> 2 * x[5] = 12; c = 5: p = 6
    # masked, floor 6 -> both neighbours and the position clamp onto 5 -> 12 again.
    taps = tap_values([1, 2, 3, 4, 5, 6], {}, 1)
    assert taps[0].tolist() == [2.0, 3.0, 4.0, 5.0, 12.0, 12.0]


def test_offset_gradient_is_zero_in_the_masked_edge_zone():
    # k = 3, C = 6 as above: c = 0, n = 1 at p = 0.75 is masked; n = 2 at p = 2.5 is not:
    # d out / d offset = weight * (xp[3] - xp[2]) = 10 * 1.
    x = torch.arange(1.0, 7.0, dtype=torch.float64).view(1, 1, 6)
    offset = torch.zeros(1, 3, 6, dtype=torch.float64)
    offset[0, 1, 0], offset[0, 2, 0] = -0.25, 0.5
    offset.requires_grad_(True)
    weight = torch.tensor([[[1.0, 5.0, 10.0]]], dtype=torch.float64)
    deform_conv1d_released(x, offset, weight)[0, 0, 0].backward()
    assert offset.grad[0, :, 0].tolist() == [0.0, 0.0, 10.0]


def test_zero_offsets_k3_equal_our_op():
    # For k = 3 and zero offsets both ops are an ordinary zero-padded convolution.
    x, weight = torch.randn(2, 1, 9), torch.randn(1, 1, 3)
    offset = torch.zeros(2, 3, 9)
    torch.testing.assert_close(
        deform_conv1d_released(x, offset, weight), deform_conv1d(x, offset, weight, padding=1)
    )


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 1), (2, 3)])
def test_matches_the_loop_transcription_values_and_gradients(k, in_channels, out_channels):
    gen = torch.Generator().manual_seed(10 * k + in_channels)
    length = 8
    x = torch.randn(2, in_channels, length, dtype=torch.float64, generator=gen)
    # offsets up to +-4 channels: every zone (both masks, clamping, interior) is reached
    offset = 4 * (2 * torch.rand(2, k, length, dtype=torch.float64, generator=gen) - 1)
    weight = torch.randn(out_channels, in_channels, k, dtype=torch.float64, generator=gen)
    bias = torch.randn(out_channels, dtype=torch.float64, generator=gen)
    inputs = [t.clone().requires_grad_(True) for t in (x, offset, weight, bias)]
    twins = [t.clone().requires_grad_(True) for t in (x, offset, weight, bias)]
    out = deform_conv1d_released(*inputs)
    expected = deform_conv1d_released_loops(*twins)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    out.backward(grad)
    expected.backward(grad)
    for name, mine, ref in zip(("input", "offset", "weight", "bias"), inputs, twins, strict=True):
        torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_float32_matches_the_loop_transcription():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 7, generator=gen)
    offset = 3 * torch.randn(1, 5, 7, generator=gen)
    weight = torch.randn(1, 1, 5, generator=gen)
    out = deform_conv1d_released(x, offset, weight)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, deform_conv1d_released_loops(x, offset, weight))


def test_float64_gradcheck():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    # fractional parts away from 0 and 1: finite differences never cross a floor() step
    offset = torch.randint(-3, 4, (2, 3, 6), generator=gen).double()
    offset = offset + 0.2 + 0.6 * torch.rand(2, 3, 6, dtype=torch.float64, generator=gen)
    offset.requires_grad_(True)
    weight = torch.randn(3, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, generator=gen, requires_grad=True)
    assert gradcheck(deform_conv1d_released, (x, offset, weight, bias))


def test_batch_size_zero_and_non_contiguous_inputs():
    out = deform_conv1d_released(torch.randn(0, 1, 5), torch.randn(0, 3, 5), torch.randn(1, 1, 3))
    assert out.shape == (0, 1, 5)
    x = torch.randn(5, 1, 2).transpose(0, 2)  # (2, 1, 5), non-contiguous
    offset = torch.randn(5, 3, 2).permute(2, 1, 0)
    weight = torch.randn(1, 1, 3)
    torch.testing.assert_close(
        deform_conv1d_released(x, offset, weight),
        deform_conv1d_released(x.contiguous(), offset.contiguous(), weight),
    )


def test_autocast_runs_in_float32():
    x, offset, weight = torch.randn(2, 1, 9), 2 * torch.randn(2, 3, 9), torch.randn(1, 1, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv1d_released(x.bfloat16(), offset.bfloat16(), weight)
    assert out.dtype == torch.float32
    reference = deform_conv1d_released(x.bfloat16().float(), offset.bfloat16().float(), weight)
    torch.testing.assert_close(out, reference)


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (((2, 1, 5), (2, 3, 5), (1, 1)), "weight must be 3-D, received shape"),
        (((2, 1, 5), (2, 3, 5), (1, 2, 3)), r"weight must have shape \(C_out, C_in=1"),
        (((2, 1, 5), (2, 5, 5), (1, 1, 3)), r"offset must have shape \(B=2, k=3, L=5\), received"),
        (((2, 1, 0), (2, 3, 0), (1, 1, 3)), "input length must be >= 1, received 0"),
    ],
)
def test_bad_arguments_say_received_and_expected(shapes, match):
    tensors = [torch.randn(*shape) for shape in shapes]
    with pytest.raises(ValueError, match=match):
        deform_conv1d_released(*tensors)


def test_bad_bias_shape():
    with pytest.raises(ValueError, match=r"bias must have shape \(1,\), received \(2,\)"):
        deform_conv1d_released(
            torch.randn(1, 1, 4), torch.randn(1, 3, 4), torch.randn(1, 1, 3), torch.randn(2)
        )
