"""Operators: the deformable 1D convolution (ours, and the released code's sampling rules),
the fused attention-block tail and the view-gradient global average pool; fused Triton
kernels for CUDA in :mod:`~defcon_exp.ops.triton_ops` (chosen by
:mod:`~defcon_exp.ops.kernel_paths`)."""

from defcon_exp.ops.deform_conv1d import DeformConv1d, deform_conv1d
from defcon_exp.ops.deform_conv1d_op import PYTHON_IMPLEMENTATIONS
from defcon_exp.ops.deform_conv1d_released import deform_conv1d_released
from defcon_exp.ops.scale_add_relu import scale_add_relu
from defcon_exp.ops.spatial_mean import spatial_mean

__all__ = [
    "PYTHON_IMPLEMENTATIONS",
    "DeformConv1d",
    "deform_conv1d",
    "deform_conv1d_released",
    "scale_add_relu",
    "spatial_mean",
]
