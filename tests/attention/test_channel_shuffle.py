import pytest
import torch

from defcon_exp.attention import channel_shuffle, channel_unshuffle, shuffle_groups


@pytest.mark.parametrize(("k", "groups"), [(1, 1), (3, 4), (5, 8), (7, 8), (9, 16)])
def test_shuffle_groups_rule(k, groups):
    assert shuffle_groups(k) == groups


@pytest.mark.parametrize(("channels", "groups"), [(8, 4), (256, 4), (512, 8), (2048, 8), (6, 3)])
def test_shuffle_is_a_permutation_and_unshuffle_inverts_it(channels, groups):
    index = torch.arange(channels).view(1, 1, channels)
    shuffled = channel_shuffle(index, groups)
    assert sorted(shuffled.flatten().tolist()) == list(range(channels))
    assert not torch.equal(shuffled, index) or groups in (1, channels)
    assert torch.equal(channel_unshuffle(shuffled, groups), index)
    assert torch.equal(channel_shuffle(channel_unshuffle(index, groups), groups), index)


def test_shuffle_brings_far_channels_together():
    # 8 channels, 4 groups: groups are {0,1}, {2,3}, {4,5}, {6,7}; ShuffleNet interleaves them.
    shuffled = channel_shuffle(torch.arange(8), 4)
    assert shuffled.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_indivisible_channels_are_refused():
    with pytest.raises(ValueError, match="10 channels are not divisible by groups=4"):
        channel_shuffle(torch.zeros(10), 4)
