"""Triton kernels of the pooled-vector attention path and the attention block's tail.

Only imported when Triton is (:mod:`defcon_exp.ops.triton_launch` guards the import).
Launched by :mod:`defcon_exp.ops.triton_ops`, which documents the maths; the rules shared
with the ATen implementation (:mod:`defcon_exp.ops.deform_conv1d_op`):

- sampling position of tap ``n`` for channel ``c`` in the signal padded by two:
  ``pos = offset + (c + 2 - K//2 + n)`` in float32, ``left = floor(pos)``,
  ``frac = pos - left``; a NaN ``left`` becomes 0 and ``left`` is clamped onto
  ``[0, L + 2]``, so neighbours outside the signal (and non-finite offsets) read zero, while
  the NaN ``frac`` of a non-finite offset still makes the output NaN;
- the sampled value is ``x[left] + frac * (x[left + 1] - x[left])``.

Reductions over the batch (weight gradients) and the scatter of the input gradient use
atomic adds into a zero-filled float32 buffer: one launch for the fill, one for the kernel.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _shuffled_channel(q, per, SHUFFLE: tl.constexpr):
    """The channel at position ``q`` of the channel-shuffled vector (``per = C / SHUFFLE``)."""
    return (q % SHUFFLE) * per + q // SHUFFLE


@triton.jit
def _tap_offset(row, c, valid, woff_ptr, n, C, scale, K: tl.constexpr, SHUFFLE: tl.constexpr):
    """Offset of tap ``n`` at channels ``c``: the 'same'-padded conv of the (shuffled) signal."""
    per = C // SHUFFLE
    s = (c % per) * SHUFFLE + c // per  # where channel c sits in the shuffled vector
    off = tl.zeros(valid.shape, dtype=tl.float32)
    for j in tl.static_range(K):
        q = s - K // 2 + j
        inside = valid & (q >= 0) & (q < C)
        q = tl.where(inside, q, 0)
        xs = tl.load(row + _shuffled_channel(q, per, SHUFFLE), mask=inside, other=0.0)
        off += tl.load(woff_ptr + n * K + j) * (xs.to(tl.float32) * scale)
    return off


@triton.jit
def _sample(row, c, valid, off, n, C, scale, K: tl.constexpr):
    """Linear interpolation of the signal at tap ``n``'s position; returns the value, the
    slope ``x[left + 1] - x[left]``, ``frac`` and the left neighbour's index (unpadded)."""
    pos = off + (c + 2 - K // 2 + n).to(tl.float32)
    left = tl.floor(pos)
    frac = pos - left
    left = tl.where(left == left, left, 0.0)  # NaN -> the zero padding
    left = tl.minimum(tl.maximum(left, 0.0), C + 2.0)
    li = left.to(tl.int32) - 2
    in_l = valid & (li >= 0) & (li < C)
    in_r = valid & (li + 1 >= 0) & (li + 1 < C)
    x_l = tl.load(row + tl.where(in_l, li, 0), mask=in_l, other=0.0).to(tl.float32) * scale
    x_r = tl.load(row + tl.where(in_r, li + 1, 0), mask=in_r, other=0.0).to(tl.float32) * scale
    slope = x_r - x_l
    return x_l + frac * slope, slope, frac, li


@triton.jit
def defcon_gate_forward_kernel(
    sums_ptr, woff_ptr, w_ptr, out_ptr, C, scale,
    B, K: tl.constexpr, SHUFFLE: tl.constexpr, SIGMOID: tl.constexpr, OFFSETS: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program ``(row block, channel block)``: ``out[b, c]`` for ``ROWS`` samples by
    ``BLOCK`` channels (see triton_ops). ``OFFSETS=False``: zero offsets (ECA's conv)."""
    b = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    c = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    valid = (b < B) & (c < C)
    row = sums_ptr + b * C
    logit = tl.zeros((ROWS, BLOCK), dtype=tl.float32)
    for n in tl.static_range(K):
        if OFFSETS:
            off = _tap_offset(row, c, valid, woff_ptr, n, C, scale, K, SHUFFLE)
        else:
            off = tl.zeros((ROWS, BLOCK), dtype=tl.float32)
        value, _, _, _ = _sample(row, c, valid, off, n, C, scale, K)
        logit += tl.load(w_ptr + n) * value
    if SIGMOID:
        logit = tl.sigmoid(logit)
    tl.store(out_ptr + b * C + c, logit, mask=valid)


@triton.jit
def defcon_gate_backward_kernel(
    grad_ptr, sums_ptr, woff_ptr, w_ptr, gate_ptr, grads_ptr, C, B, scale,
    K: tl.constexpr, SHUFFLE: tl.constexpr, SIGMOID: tl.constexpr, OFFSETS: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program ``(row block, channel block)``. ``grads_ptr`` is a zero-filled float32
    buffer: ``B * C`` gradients of the sums, then ``K * K`` of the offset weight, then ``K``
    of the weight."""
    b = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    c = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    valid = (b < B) & (c < C)
    row = sums_ptr + b * C
    grad_row = grads_ptr + b * C
    grad_woff = grads_ptr + B * C
    grad_w = grad_woff + K * K if OFFSETS else grad_woff
    grad = tl.load(grad_ptr + b * C + c, mask=valid, other=0.0).to(tl.float32)  # 0 off the tile
    if SIGMOID:
        gate = tl.load(gate_ptr + b * C + c, mask=valid, other=0.0)
        grad = grad * gate * (1.0 - gate)
    per = C // SHUFFLE
    s = (c % per) * SHUFFLE + c // per
    for n in tl.static_range(K):
        if OFFSETS:
            off = _tap_offset(row, c, valid, woff_ptr, n, C, scale, K, SHUFFLE)
        else:
            off = tl.zeros((ROWS, BLOCK), dtype=tl.float32)
        value, slope, frac, li = _sample(row, c, valid, off, n, C, scale, K)
        tl.atomic_add(grad_w + n, tl.sum(tl.where(valid, grad * value, 0.0)))
        grad_sampled = grad * tl.load(w_ptr + n)
        grad_right = grad_sampled * frac
        grad_left = grad_sampled - grad_right
        in_l = valid & (li >= 0) & (li < C)
        in_r = valid & (li + 1 >= 0) & (li + 1 < C)
        tl.atomic_add(grad_row + tl.where(in_l, li, 0), grad_left * scale, mask=in_l)
        tl.atomic_add(grad_row + tl.where(in_r, li + 1, 0), grad_right * scale, mask=in_r)
        if OFFSETS:  # the offset convolution's backward
            grad_off = tl.where(valid, grad_sampled * slope, 0.0)
            for j in tl.static_range(K):
                q = s - K // 2 + j
                inside = valid & (q >= 0) & (q < C)
                channel = _shuffled_channel(tl.where(inside, q, 0), per, SHUFFLE)
                xs = tl.load(row + channel, mask=inside, other=0.0).to(tl.float32) * scale
                tl.atomic_add(grad_woff + n * K + j, tl.sum(grad_off * xs))
                wj = tl.load(woff_ptr + n * K + j)
                tl.atomic_add(grad_row + channel, grad_off * wj * scale, mask=inside)


@triton.jit
def deform_depthwise_forward_kernel(
    x_ptr, off_ptr, w_ptr, out_ptr, BG, G, L, L_out, stride, padding, dilation,
    K: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program ``(row block, position block)``: ``out[b, g, p]`` of the depthwise deformable
    conv (one input channel, one output channel and one offset group per ``g``) for
    ``ROWS`` rows ``b * G + g`` by ``BLOCK`` positions."""
    bg = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    g = bg % G
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    valid = (bg < BG) & (p < L_out)
    row = x_ptr + bg * L
    acc = tl.zeros((ROWS, BLOCK), dtype=tl.float32)
    for n in tl.static_range(K):
        off = tl.load(off_ptr + (bg * K + n) * L_out + p, mask=valid, other=0.0).to(tl.float32)
        base = p * stride - padding + n * dilation
        value, _, _, _ = _sample_at(row, base, valid, off, L)
        acc += tl.load(w_ptr + g * K + n, mask=bg < BG, other=0.0).to(tl.float32) * value
    tl.store(out_ptr + bg * L_out + p, acc, mask=valid)


@triton.jit
def _sample_at(row, base, valid, off, L):
    """:func:`_sample` for the general geometry: ``base`` is the unpadded base position."""
    pos = off + (base + 2).to(tl.float32)
    left = tl.floor(pos)
    frac = pos - left
    left = tl.where(left == left, left, 0.0)
    left = tl.minimum(tl.maximum(left, 0.0), L + 2.0)
    li = left.to(tl.int32) - 2
    in_l = valid & (li >= 0) & (li < L)
    in_r = valid & (li + 1 >= 0) & (li + 1 < L)
    x_l = tl.load(row + tl.where(in_l, li, 0), mask=in_l, other=0.0).to(tl.float32)
    x_r = tl.load(row + tl.where(in_r, li + 1, 0), mask=in_r, other=0.0).to(tl.float32)
    slope = x_r - x_l
    return x_l + frac * slope, slope, frac, li


@triton.jit
def deform_depthwise_backward_kernel(
    grad_ptr, x_ptr, off_ptr, w_ptr, grads_ptr, grad_off_ptr, B, G, L, L_out,
    stride, padding, dilation, K: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program ``(row block, position block)`` as the forward. ``grads_ptr``: zero-filled
    float32, ``B * G * L`` input gradients then ``G * K`` weight gradients; ``grad_off_ptr``:
    ``Tensor[B, G*K, L_out]``."""
    bg = tl.program_id(0) * ROWS + tl.arange(0, ROWS)[:, None]
    g = bg % G
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    valid = (bg < B * G) & (p < L_out)
    row = x_ptr + bg * L
    grad_row = grads_ptr + bg * L
    grad = tl.load(grad_ptr + bg * L_out + p, mask=valid, other=0.0).to(tl.float32)
    for n in tl.static_range(K):
        off = tl.load(off_ptr + (bg * K + n) * L_out + p, mask=valid, other=0.0).to(tl.float32)
        base = p * stride - padding + n * dilation
        value, slope, frac, li = _sample_at(row, base, valid, off, L)
        contribution = tl.sum(tl.where(valid, grad * value, 0.0), axis=1)[:, None]
        tl.atomic_add(grads_ptr + B * G * L + g * K + n, contribution, mask=bg < B * G)
        grad_sampled = grad * tl.load(w_ptr + g * K + n, mask=bg < B * G, other=0.0).to(tl.float32)
        grad_right = grad_sampled * frac
        in_l = valid & (li >= 0) & (li < L)
        in_r = valid & (li + 1 >= 0) & (li + 1 < L)
        tl.atomic_add(grad_row + tl.where(in_l, li, 0), grad_sampled - grad_right, mask=in_l)
        tl.atomic_add(grad_row + tl.where(in_r, li + 1, 0), grad_right, mask=in_r)
        tl.store(grad_off_ptr + (bg * K + n) * L_out + p, grad_sampled * slope, mask=valid)


@triton.jit
def scale_add_relu_forward_kernel(
    f_ptr, w_ptr, id_ptr, out_ptr, C, HW, s_b, s_c, s_hw, i_b, i_c, i_hw,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Program ``(b, c block, hw block)``: ``out = relu(f * w[b, c] + identity)``; ``f`` and
    ``out`` share strides ``s_*``, the identity has ``i_*`` (``H, W`` merged into ``hw``)."""
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    inside = (c < C)[:, None] & (hw < HW)[None, :]
    at = b * s_b + c[:, None] * s_c + hw[None, :] * s_hw
    f = tl.load(f_ptr + at, mask=inside, other=0.0)
    w = tl.load(w_ptr + b * C + c, mask=c < C, other=0.0)  # kept in float32 (see triton_ops)
    identity = tl.load(id_ptr + b * i_b + c[:, None] * i_c + hw[None, :] * i_hw, mask=inside)
    value = f.to(tl.float32) * w.to(tl.float32)[:, None] + identity.to(tl.float32)
    value = tl.where(value < 0.0, 0.0, value)  # keeps NaN, as torch.relu does
    tl.store(out_ptr + at, value.to(f.dtype), mask=inside)


@triton.jit
def scale_add_relu_backward_kernel(
    grad_ptr, f_ptr, w_ptr, out_ptr, gf_ptr, gid_ptr, gw_ptr, C, HW,
    s_b, s_c, s_hw, g_b, g_c, g_hw, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Program ``(b, c block)``, looping over ``hw``: the ReLU-masked gradient (the
    identity's), times ``w`` (the features'), and its dot product with the features over
    ``hw`` (the weights'). ``f``, ``out``, ``gf``, ``gid`` share strides ``s_*``; the
    incoming gradient has ``g_*``."""
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    w = tl.load(w_ptr + b * C + c, mask=c < C, other=0.0)
    dot = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        inside = (c < C)[:, None] & (hw < HW)[None, :]
        at = b * s_b + c[:, None] * s_c + hw[None, :] * s_hw
        grad = tl.load(grad_ptr + b * g_b + c[:, None] * g_c + hw[None, :] * g_hw, mask=inside, other=0.0)
        out = tl.load(out_ptr + at, mask=inside, other=0.0)
        f = tl.load(f_ptr + at, mask=inside, other=0.0)
        grad = tl.where(out <= 0, 0.0, grad.to(tl.float32))  # as threshold_backward: NaN passes
        tl.store(gid_ptr + at, grad.to(gid_ptr.dtype.element_ty), mask=inside)
        tl.store(gf_ptr + at, (grad * w.to(tl.float32)[:, None]).to(gf_ptr.dtype.element_ty), mask=inside)
        dot += tl.sum(grad * f.to(tl.float32), axis=1)
    tl.store(gw_ptr + b * C + c, dot, mask=c < C)
