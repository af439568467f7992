"""The modules beyond the paper: modulated, mixed and correlation-offset DEFCON."""

import pytest
import torch
from torch.nn import functional as F

from defcon_exp.attention import Defcon, DefconCorrelated, DefconMix, DefconModulated
from defcon_exp.ops import deform_conv1d


def test_modulated_starts_as_defcon_and_mask_matters():
    torch.manual_seed(0)
    modulated = DefconModulated(32, kernel_size=3, offset_init="kaiming")
    plain = Defcon(32, kernel_size=3, offset_init="kaiming")
    plain.load_state_dict(modulated.state_dict(), strict=False)
    x = torch.randn(2, 32, 4, 4)
    torch.testing.assert_close(modulated(x), plain(x))
    torch.nn.init.normal_(modulated.mask_conv.weight)
    signal = x.mean((2, 3))[:, None]
    mask = 2 * torch.sigmoid(F.conv1d(signal, modulated.mask_conv.weight, padding=1))
    expected = deform_conv1d(
        signal, modulated.offsets(signal), modulated.weight, padding=1, mask=mask
    )[:, 0]
    torch.testing.assert_close(modulated.channel_logits(x.mean((2, 3))), expected)


def test_mix_is_a_learned_blend_of_eca_and_defcon():
    torch.manual_seed(1)
    mix = DefconMix(32, kernel_size=3, offset_init="kaiming")
    pooled = torch.randn(2, 32)
    local = F.conv1d(pooled[:, None], mix.local_conv.weight, padding=1)[:, 0]
    deformable = Defcon.channel_logits(mix, pooled)
    assert mix.local_share.item() == pytest.approx(0.5)
    torch.testing.assert_close(mix.channel_logits(pooled), 0.5 * local + 0.5 * deformable)
    with torch.no_grad():
        mix.mix_logit.fill_(20.0)
    torch.testing.assert_close(mix.channel_logits(pooled), local, atol=1e-6, rtol=0)


def test_corr_starts_local_and_follows_the_correlation():
    torch.manual_seed(2)
    module = DefconCorrelated(16, kernel_size=3, momentum=1.0)
    assert module.neighbours[5].tolist()[0] == 5
    assert sorted(module.neighbours[5].tolist()) == [4, 5, 6]
    # Channels 3 and 11 carry the same signal; 7 is its negative. After one training batch
    # channel 3's taps are itself and channel 11 first.
    base = torch.randn(64, 1)
    pooled = torch.randn(64, 16) * 0.1
    pooled[:, 3:4] += base
    pooled[:, 11:12] += base
    module.train()
    module.channel_logits(pooled)
    assert module.neighbours[3].tolist()[:2] == [3, 11]
    assert module.neighbours[11].tolist()[:2] == [11, 3]
    # The sampling really reads those channels: with zero learned offsets and a one-hot
    # weight on tap 1, channel 3's logit is channel 11's value.
    with torch.no_grad():
        module.weight.zero_()
        module.weight[0, 0, 1] = 1.0
    module.eval()
    logits = module.channel_logits(pooled)
    torch.testing.assert_close(logits[:, 3], pooled[:, 11])
    torch.testing.assert_close(logits[:, 11], pooled[:, 3])


def test_corr_eval_does_not_update_and_state_round_trips():
    module = DefconCorrelated(16, kernel_size=3).eval()
    before = module.running_correlation.clone()
    module(torch.randn(8, 16, 2, 2))
    assert torch.equal(module.running_correlation, before)
    clone = DefconCorrelated(16, kernel_size=3)
    clone.load_state_dict(module.state_dict())
    assert torch.equal(clone.neighbours, module.neighbours)


def test_corr_rejects_bad_arguments():
    with pytest.raises(ValueError, match="momentum must be in"):
        DefconCorrelated(16, kernel_size=3, momentum=0)
    with pytest.raises(ValueError, match="kernel_size=5 exceeds the 4 channels"):
        DefconCorrelated(4, kernel_size=5)
