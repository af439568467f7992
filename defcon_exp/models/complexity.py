"""A model's size as the papers' tables give it: parameters and FLOPs per image.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
products, 2 FLOPs per multiply-add; BatchNorm, activations and pooling are not counted, nor
is the deformable 1D op, a custom autograd function: a few kFLOPs per module). The papers'
"GFLOPs" (SE, ECA, CBAM: ResNet-50 = 4.1 at 224x224) are multiply-adds, half of this count:
both are reported (``gflops_per_image`` and ``gmacs_per_image``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["flops_per_image"]


def flops_per_image(model: nn.Module, image_size: int) -> int:
    """Forward FLOPs of one ``3 x image_size x image_size`` image in eval mode (the model's
    mode, parameters and buffers are left as they were)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
