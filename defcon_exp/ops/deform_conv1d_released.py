"""Deformable 1D convolution with the sampling rules of the authors' released code.

The DEFCON authors' public code (``vatsalag99/Deformable-Channel-Attention``,
``dca_models/deform_conv_1d.py``) samples the signal with its own rules, which differ from
:func:`defcon_exp.ops.deform_conv1d` (DCN / torchvision semantics). This module reimplements
those rules so a run can use them; see ``docs/released_code.md`` for the comparison.

For a signal of length ``L``, kernel size ``k`` and output position ``c`` (0-based):

1. the signal is zero-padded by ``k // 2`` on each side (length ``Lp = L + 2 * (k // 2)``);
2. tap ``n`` samples the padded signal at ``p = c + 1 + (n - k // 2) + offset[n, c]`` —
   base positions start at 1, so for ``k > 3`` the window is not centred on channel ``c``
   (its centre tap reads channel ``c + 1 - k // 2``);
3. an edge mask uses a padding of 1 whatever ``k`` is: where ``p < 1`` or ``p > Lp - 2``
   the position snaps to ``floor(p)`` (no interpolation, no gradient to the offset);
4. the neighbours ``floor(p)`` and ``floor(p) + 1`` are clamped onto ``[0, Lp - 1]``, the
   position too, and the interpolation weights are computed from the clamped values:
   ``g_left = 1 + (q_left - p)``, ``g_right = 1 - (q_right - p)``. Where both neighbours
   clamp onto the same index (``p < 0`` or ``p >= Lp - 1``) both weights are 1, so that
   index is read twice;
5. the ``k`` sampled values are reduced by the kernel (no bias in their module).

Positions are computed in float32 at least (the released code casts the offsets to float32;
here float64 offsets stay float64 so gradcheck can run). Under ``torch.autocast`` the op
runs in float32, as :func:`~defcon_exp.ops.deform_conv1d` does.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["deform_conv1d_released", "released_base_positions", "released_sampling"]


def released_base_positions(
    kernel_size: int,
    length: int,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``Tensor[k, L]``: tap ``n``'s zero-offset position for output ``c`` in the padded
    signal's coordinates, ``c + 1 + n - k // 2`` (rule 2 of the module docstring)."""
    channels = torch.arange(1, length + 1, device=device, dtype=dtype)
    taps = torch.arange(kernel_size, device=device, dtype=dtype) - kernel_size // 2
    return taps[:, None] + channels


def released_sampling(offset: Tensor, length: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where and how strongly each tap reads the padded signal (rules 2-4).

    Args:
        offset: ``Tensor[B, k, L]``, offset of tap ``n`` at output ``c``.
        length: ``L``, the unpadded signal length.

    Returns:
        ``(q_left, q_right, g_left, g_right)``: int64 indices into the padded signal
        ``Tensor[B, k, L]`` and their interpolation weights ``Tensor[B, k, L]`` (float32 at
        least; differentiable w.r.t. ``offset`` outside the masked edge zone).
    """
    kernel_size = offset.shape[1]
    padded_length = length + 2 * (kernel_size // 2)
    position_dtype = torch.promote_types(offset.dtype, torch.float32)
    base = released_base_positions(kernel_size, length, offset.device, position_dtype)
    position = offset.to(position_dtype) + base
    left = position.detach().floor()
    edge = ((position < 1) | (position > padded_length - 2)).detach()
    position = torch.where(edge, left, position).clamp(0, padded_length - 1)
    q_left = left.clamp(0, padded_length - 1)
    q_right = (left + 1).clamp(0, padded_length - 1)
    g_left = 1 + (q_left - position)
    g_right = 1 - (q_right - position)
    return q_left.long(), q_right.long(), g_left, g_right


def _check_args(input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    for name, tensor in (("input", input), ("offset", offset), ("weight", weight)):
        if tensor.dim() != 3:
            raise ValueError(
                f"deform_conv1d_released: {name} must be 3-D, received shape {tuple(tensor.shape)}"
            )
    batch, in_channels, length = input.shape
    out_channels, weight_in, kernel_size = weight.shape
    if weight_in != in_channels or kernel_size < 1:
        raise ValueError(
            f"deform_conv1d_released: weight must have shape (C_out, C_in={in_channels}, k>=1), "
            f"received {tuple(weight.shape)}"
        )
    if length < 1:
        raise ValueError(f"deform_conv1d_released: input length must be >= 1, received {length}")
    if tuple(offset.shape) != (batch, kernel_size, length):
        raise ValueError(
            f"deform_conv1d_released: offset must have shape (B={batch}, k={kernel_size}, "
            f"L={length}), received {tuple(offset.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"deform_conv1d_released: bias must have shape ({out_channels},), "
            f"received {tuple(bias.shape)}"
        )


def deform_conv1d_released(
    input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Deformable 1D convolution with the released code's sampling rules (module docstring).

    Stride 1, one offset group shared by every input channel, output length = input length.

    Args:
        input: ``Tensor[B, C_in, L]`` (DEFCON: the pooled channel vector, ``C_in = 1``).
        offset: ``Tensor[B, k, L]``; channel ``n`` shifts tap ``n``.
        weight: ``Tensor[C_out, C_in, k]``.
        bias: optional ``Tensor[C_out]``.

    Returns:
        ``Tensor[B, C_out, L]``; float32 under ``torch.autocast``, else the input's dtype.
    """
    device_type = input.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            up = [None if t is None else _float32(t) for t in (input, offset, weight, bias)]
            return deform_conv1d_released(*up)
    _check_args(input, offset, weight, bias)
    batch, in_channels, length = input.shape
    kernel_size = weight.shape[-1]
    padded = F.pad(input, (kernel_size // 2, kernel_size // 2))
    q_left, q_right, g_left, g_right = released_sampling(offset, length)

    def read(index: Tensor) -> Tensor:  # Tensor[B, k, L] -> Tensor[B, C_in, k, L]
        flat = index.reshape(batch, 1, kernel_size * length).expand(-1, in_channels, -1)
        return padded.gather(2, flat).view(batch, in_channels, kernel_size, length)

    g_left = g_left.to(input.dtype)[:, None]
    g_right = g_right.to(input.dtype)[:, None]
    sampled = g_left * read(q_left) + g_right * read(q_right)  # Tensor[B, C_in, k, L]
    out = torch.einsum("oin,binl->bol", weight.to(sampled.dtype), sampled)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out


def _float32(tensor: Tensor) -> Tensor:
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
