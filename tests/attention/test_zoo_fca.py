"""FcaNet against its equations: each channel group pooled by its 2D DCT coefficient (scipy's orthonormal DCT-II), then SE's MLP."""

from __future__ import annotations

import pytest
import torch
from scipy import fft
from torch import nn
from torch.nn import functional as F

from defcon_exp.attention import create_attention

DTYPE = torch.float64


def _randomise(module: nn.Module, std: float = 0.3) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param, std=std)
    return module


# --- FcaNet: group g pooled by the 2D DCT coefficient of its frequency --------------------


def _fca_reference(
    module: nn.Module, x: torch.Tensor, frequencies: list[tuple[int, int]]
) -> torch.Tensor:
    """Orthonormal 2D DCT-II of each channel's 7x7 map (scipy), coefficient (u, v) of its
    group -> bias-free MLP -> sigmoid -> scale."""
    pooled = F.adaptive_avg_pool2d(x, 7) if x.shape[-1] != 7 else x
    spectrum = torch.from_numpy(fft.dctn(pooled.numpy(), type=2, axes=(2, 3), norm="ortho"))
    part = x.shape[1] // len(frequencies)
    vector = torch.stack(
        [
            spectrum[:, c, frequencies[c // part][0], frequencies[c // part][1]]
            for c in range(x.shape[1])
        ],
        dim=1,
    )
    hidden = torch.relu(vector @ module.fc1.weight.T)
    return x * torch.sigmoid(hidden @ module.fc2.weight.T)[:, :, None, None]


@pytest.mark.parametrize("size", [7, 4, 12])  # 7x7 as is, smaller and larger maps pooled to 7x7
def test_fca_pools_each_group_with_its_dct_coefficient(size):
    module = _randomise(create_attention("fca", 64, dtype=DTYPE))
    x = torch.randn(2, 64, size, size, dtype=DTYPE)
    # the paper's first four "top" frequencies (Fig. 3 / its code): (0,0), (0,1), (6,0), (0,5)
    assert module.frequencies[:4] == [(0, 0), (0, 1), (6, 0), (0, 5)]
    assert len(module.frequencies) == 16 and module.dct_filters.shape == (64, 7, 7)
    assert "dct_filters" in dict(module.named_buffers())  # not a parameter
    torch.testing.assert_close(module(x), _fca_reference(module, x, module.frequencies))


def test_fca_dc_frequency_is_a_scaled_average_pool():
    module = create_attention("fca", 16, frequencies="top1", reduction=4, dtype=DTYPE)
    x = torch.randn(2, 16, 7, 7, dtype=DTYPE)
    torch.testing.assert_close(module.spectral_pool(x), 7 * x.mean(dim=(2, 3)))  # 1/7 per pixel
    assert (
        module.fc1.out_features == 4 and sum(p.numel() for p in module.parameters()) == 2 * 16 * 4
    )


def test_fca_frequencies_scale_with_the_dct_size():
    # a 14x14 DCT uses (2u, 2v): the same frequency as (u, v) on 7x7
    module = create_attention("fca", 16, frequencies="low4", dct_size=14, reduction=4, dtype=DTYPE)
    x = torch.randn(1, 16, 14, 14, dtype=DTYPE)
    spectrum = torch.from_numpy(fft.dctn(x.numpy(), type=2, axes=(2, 3), norm="ortho"))
    expected = [
        spectrum[0, c, 2 * u, 2 * v]
        for c, (u, v) in zip(range(0, 16, 4), [(0, 0), (0, 1), (1, 0), (1, 1)], strict=True)
    ]
    torch.testing.assert_close(module.spectral_pool(x)[0, ::4], torch.stack(expected))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frequencies": "mid16"}, "unknown frequencies 'mid16'"),
        ({"frequencies": "top33"}, "unknown frequencies 'top33'"),
        ({"frequencies": "top32"}, "48 channels do not split into 32 frequency groups"),
    ],
)
def test_fca_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_attention("fca", 48, **kwargs)
