"""SimAM against the paper's minimal-energy formula, by hand and pixel by pixel."""

from __future__ import annotations

import math

import pytest
import torch

from defcon_exp.attention import create_attention

DTYPE = torch.float64


# --- SimAM: x * sigmoid(1 / e_t), the minimal energy of each neuron -----------------------


def test_simam_hand_worked_map():
    # one channel [[0, 0], [0, 4]]: mu = 1, var = (1 + 1 + 1 + 9) / (4 - 1) = 4
    lam = 1e-4
    module = create_attention("simam", 1, e_lambda=lam)
    x = torch.tensor([[[[0.0, 0.0], [0.0, 4.0]]]], dtype=DTYPE)
    energy_zero = 4 * (4 + lam) / (1 + 2 * 4 + 2 * lam)  # (t - mu)^2 = 1
    energy_four = 4 * (4 + lam) / (9 + 2 * 4 + 2 * lam)  # (t - mu)^2 = 9
    expected = torch.tensor(
        [[[[0.0, 0.0], [0.0, 4 / (1 + math.exp(-1 / energy_four))]]]], dtype=DTYPE
    )
    torch.testing.assert_close(module(x), expected)
    weight_zero = 1 / (1 + math.exp(-1 / energy_zero))
    weight_four = 1 / (1 + math.exp(-1 / energy_four))
    assert module.statistics(x)["weights"].item() == pytest.approx(
        (3 * weight_zero + weight_four) / 4
    )


def test_simam_equals_the_energy_formula_pixel_by_pixel():
    lam = 1e-4
    module = create_attention("simam", 3, e_lambda=lam)
    assert not list(module.parameters())
    x = torch.randn(2, 3, 4, 5, dtype=DTYPE)
    expected = torch.empty_like(x)
    for b in range(2):
        for c in range(3):
            values = x[b, c].flatten()
            mu = values.mean()
            var = ((values - mu) ** 2).sum() / (values.numel() - 1)
            for i in range(4):
                for j in range(5):
                    t = x[b, c, i, j]
                    energy = 4 * (var + lam) / ((t - mu) ** 2 + 2 * var + 2 * lam)
                    expected[b, c, i, j] = t * torch.sigmoid(1 / energy)
    torch.testing.assert_close(module(x), expected)
