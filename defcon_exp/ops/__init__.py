"""Operators: the deformable 1D convolution."""

from defcon_exp.ops.deform_conv1d import DeformConv1d, deform_conv1d

__all__ = ["DeformConv1d", "deform_conv1d"]
