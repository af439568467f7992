"""Mixup / CutMix (issue 14): torchvision v2's math, label mass, box areas, the mixed loss,
timm's switching, and draws that are a pure function of (seed, epoch, batch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from defcon_exp.engine.mixing import Mixer, cutmix_box, cutmix_images, mixup_images
from defcon_exp.regularisation import MixConfig

K = 7


def batch(n: int = 8, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=gen), torch.randint(0, K, (n,), generator=gen)


def soft_targets(mixed, num_classes: int = K) -> torch.Tensor:
    one_hot = nn.functional.one_hot
    return mixed.lam * one_hot(mixed.labels, num_classes).double() + (1 - mixed.lam) * one_hot(
        mixed.rolled, num_classes
    ).double()


def test_mixup_equals_torchvision_v2_mixup():
    images, labels = batch()
    torch.manual_seed(3)
    out, targets = v2.MixUp(alpha=0.4, num_classes=K)(images, labels)
    torch.manual_seed(3)  # the same lambda torchvision drew
    lam = float(torch.distributions.Beta(torch.tensor([0.4]), torch.tensor([0.4])).sample(()))
    torch.testing.assert_close(mixup_images(images, lam), out)
    mixer_targets = lam * nn.functional.one_hot(labels, K) + (1 - lam) * nn.functional.one_hot(
        labels.roll(1, 0), K
    )
    torch.testing.assert_close(mixer_targets.float(), targets)


def test_cutmix_equals_torchvision_v2_cutmix():
    images, labels = batch(size=13)
    for seed in range(20):
        torch.manual_seed(seed)
        out, targets = v2.CutMix(alpha=1.0, num_classes=K)(images, labels)
        torch.manual_seed(seed)  # the same draws: lambda, then the centre x, then y
        lam = float(torch.distributions.Beta(torch.tensor([1.0]), torch.tensor([1.0])).sample(()))
        cx, cy = int(torch.randint(13, (1,))), int(torch.randint(13, (1,)))
        box, lam_adjusted = cutmix_box(lam, cy, cx, 13, 13)
        torch.testing.assert_close(cutmix_images(images, box), out)
        expected = lam_adjusted * nn.functional.one_hot(labels, K) + (
            1 - lam_adjusted
        ) * nn.functional.one_hot(labels.roll(1, 0), K)
        torch.testing.assert_close(expected.float(), targets)


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_cutmix_box_area_matches_lambda_away_from_borders(lam):
    (x1, y1, x2, y2), adjusted = cutmix_box(lam, 50, 50, 100, 100)
    side = 2 * int(0.5 * math.sqrt(1 - lam) * 100)
    assert (x2 - x1, y2 - y1) == (side, side)
    assert adjusted == pytest.approx(1 - side * side / 1e4)
    assert abs(adjusted - lam) <= 0.03  # only the rounding of the side to whole pixels


def test_cutmix_pixels_and_label_mass_agree():
    images, labels = batch(size=16)
    mixer = Mixer(MixConfig(cutmix_alpha=1.0), seed=4)
    for b in range(30):
        mixed = mixer(images, labels, epoch=2, batch=b)
        pasted = (mixed.images != images).any(dim=1)  # [B, H, W] pixels from the rolled image
        share = 1 - pasted[0].float().mean().item()  # image 0 ≠ image B-1 everywhere
        assert share == pytest.approx(mixed.lam, abs=1e-9)
        targets = soft_targets(mixed)
        torch.testing.assert_close(targets.sum(1), torch.ones(8, dtype=torch.float64))


def test_mixed_loss_is_cross_entropy_on_the_mixed_smoothed_targets():
    images, labels = batch()
    logits = torch.randn(8, K, dtype=torch.float64)
    mixer = Mixer(MixConfig(mixup_alpha=0.5), seed=0)
    mixed = mixer(images, labels, 0, 1)
    assert 0 < mixed.lam < 1
    for eps in (0.0, 0.1):
        criterion = nn.CrossEntropyLoss(label_smoothing=eps)
        targets = soft_targets(mixed) * (1 - eps) + eps / K  # timm's mixup_target
        closed = -(targets * logits.log_softmax(1)).sum(1).mean()
        torch.testing.assert_close(mixed.loss(criterion, logits), closed)


def test_dominant_label_is_the_larger_share():
    images, labels = batch()
    mixer = Mixer(MixConfig(mixup_alpha=1.0), seed=1)
    for b in range(20):
        mixed = mixer(images, labels, 0, b)
        want = labels if mixed.lam >= 0.5 else labels.roll(1, 0)
        assert torch.equal(mixed.dominant, want)


def test_draws_are_a_function_of_seed_epoch_batch_only():
    mixer = Mixer(MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0), seed=7)
    torch.manual_seed(0)
    np.random.seed(0)
    first = [mixer.draw(e, b, 32, 32) for e in range(2) for b in range(5)]
    torch.rand(10)
    np.random.rand(10)  # global RNG streams play no part
    again = [Mixer(MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0), seed=7).draw(e, b, 32, 32)
             for e in range(2) for b in range(5)]
    assert first == again
    assert len({d[1] for d in first}) == len(first)  # and they do vary
    assert Mixer(MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0), seed=8).draw(0, 0, 32, 32) != first[0]


def test_switching_and_probability_follow_timm():
    def kinds(settings: MixConfig) -> dict[str, float]:
        mixer = Mixer(settings, seed=0)
        drawn = [mixer.draw(0, b, 32, 32)[0] for b in range(4000)]
        return {k: drawn.count(k) / len(drawn) for k in ("none", "mixup", "cutmix")}

    both = kinds(MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0, prob=0.8, switch_prob=0.25))
    assert both["none"] == pytest.approx(0.2, abs=0.03)
    assert both["cutmix"] == pytest.approx(0.8 * 0.25, abs=0.03)
    assert kinds(MixConfig(mixup_alpha=0.2))["mixup"] == 1.0
    assert kinds(MixConfig(cutmix_alpha=1.0, switch_prob=0.0))["cutmix"] == 1.0
    assert not MixConfig(mixup_alpha=0.0, cutmix_alpha=0.0).enabled
    assert not MixConfig(mixup_alpha=0.2, prob=0.0).enabled


def test_mixup_lambda_follows_its_beta_distribution():
    from scipy import stats

    mixer = Mixer(MixConfig(mixup_alpha=0.4), seed=2)
    lams = [mixer.draw(0, b, 8, 8)[1] for b in range(3000)]
    assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3
