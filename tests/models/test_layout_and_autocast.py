"""Every model in ``torch.channels_last`` and under bfloat16 autocast (CPU).

channels_last runs in float64 so that the two layouts must agree to rounding (train-mode
BatchNorm over a batch of 2 amplifies float32 rounding noise far beyond any useful
tolerance; a wrong ``.view`` or a wrong layout assumption does not hide behind 1e-9).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from defcon_exp.models import MODEL_NAMES, Bottleneck, create_model

#: the zoo (docs/zoo.md): its full ResNet-50 checks (~30 s per model on 2 cores) run with the
#: slow tests; tests/attention/test_zoo.py checks the same properties block by block
ZOO_MODELS = {"gc", "ge", "eca_circular", "fca", "gct", "srm", "simam", "coord"}
MODELS = [
    pytest.param(name, marks=pytest.mark.slow) if name in ZOO_MODELS else name
    for name in MODEL_NAMES
]


def _model(name: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=10, dtype=dtype)


def _twin_models(name: str, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    """The model and an exact copy (a deep copy: the same weights and buffers, without the
    seconds a second ResNet-50's initialisation takes)."""
    model = _model(name, dtype)
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_equals_contiguous(name):
    model, twin = _twin_models(name, torch.float64)
    twin = twin.to(memory_format=torch.channels_last)
    assert twin.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(
        2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    layouts: list[bool] = []
    for block in twin.modules():
        if isinstance(block, Bottleneck):
            block.register_forward_hook(
                lambda _m, _i, out: layouts.append(
                    out.is_contiguous(memory_format=torch.channels_last)
                )
            )
    grad = torch.randn(2, 10, dtype=torch.float64)
    torch.manual_seed(2)  # the same dropout masks (defcon_released) in both runs
    out = model.train()(images)
    torch.manual_seed(2)
    out_cl = twin.train()(images.contiguous(memory_format=torch.channels_last))
    assert all(layouts) and len(layouts) == 16  # the blocks really ran channels_last
    torch.testing.assert_close(out_cl, out, rtol=1e-9, atol=1e-11)
    out.backward(grad)
    out_cl.backward(grad)
    for (pname, p), p_cl in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert p_cl.grad is not None, pname
        torch.testing.assert_close(p_cl.grad, p.grad, rtol=1e-8, atol=1e-10, msg=pname)
    for (bname, b), b_cl in zip(model.named_buffers(), twin.buffers(), strict=True):
        if b.is_floating_point():  # BatchNorm running statistics
            torch.testing.assert_close(b_cl, b, rtol=1e-9, atol=1e-12, msg=bname)


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_autocast_close_to_float32(name):
    model = _model(name, torch.float32)
    if name == "defcon_released":
        # The released sampling is discontinuous (edge zones snap to floor(p)); its Conv1d
        # offsets at init reach ~100 channels, so bf16-rounded feature maps flip sampled
        # positions (~25% logit change through 16 blocks). Compare the arithmetic with zero
        # offsets; tests/attention/test_defcon_released.py covers the sampling itself.
        for module in model.modules():
            if hasattr(module, "offset_conv"):
                nn.init.zeros_(module.offset_conv.weight)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval()  # running statistics: compares the arithmetic, not batch-of-2 BN noise
    with torch.no_grad():
        reference = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    # bfloat16 keeps 8 bits: ~0.5% here for every model; DEFCON's sampling positions in
    # bfloat16 (channel indices above 256 rounded) were 4-12% off.
    error = (low.float() - reference).norm() / reference.norm()
    assert error < 0.025, f"{name}: bf16 autocast logits {error:.3%} away from float32"

    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images)
        loss = nn.functional.cross_entropy(logits.float(), torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, pname
        assert torch.isfinite(p.grad).all(), pname
