"""Operators: the deformable 1D convolution and the fused attention-block tail."""

from defcon_exp.ops.deform_conv1d import DeformConv1d, deform_conv1d
from defcon_exp.ops.scale_add_relu import scale_add_relu

__all__ = ["DeformConv1d", "deform_conv1d", "scale_add_relu"]
