import math

import pytest

from defcon_exp.attention import PAPER_KERNEL_SIZES, adaptive_kernel_size, resolve_kernel_size


def eca_formula(channels: int, gamma: float = 2, b: float = 1) -> int:
    # Written out from the ECA-Net paper, independently of the product code.
    t = int(abs((math.log(channels, 2) + b) / gamma))
    return t if t % 2 else t + 1


@pytest.mark.parametrize("channels", [16, 64, 128, 256, 512, 1000, 1024, 2048, 4096])
def test_adaptive_matches_eca_formula(channels):
    assert adaptive_kernel_size(channels) == eca_formula(channels)


def test_resnet50_stage_sizes():
    stage_channels = (256, 512, 1024, 2048)
    adaptive = [resolve_kernel_size("adaptive", c, s) for s, c in enumerate(stage_channels)]
    paper = [resolve_kernel_size("paper", c, s) for s, c in enumerate(stage_channels)]
    assert adaptive == [5, 5, 5, 7]
    assert paper == list(PAPER_KERNEL_SIZES) == [3, 5, 5, 7]


def test_int_and_per_stage_list():
    assert resolve_kernel_size(9, 256) == 9
    assert resolve_kernel_size([1, 3, 5, 7], 256, stage=2) == 5


@pytest.mark.parametrize(
    ("spec", "stage", "match"),
    [
        (4, None, "odd and positive.*received 4"),
        (0, None, "odd and positive.*received 0"),
        (-3, None, "odd and positive.*received -3"),
        ("huge", None, "unknown rule 'huge'"),
        ([3, 5], 3, "stage 3 has no entry"),
        ([3, 5, 5, 7], None, "needs the stage index"),
        ([3, 4, 5, 7], 1, r"kernel_size\[1\].*received 4"),
        (3.0, None, "received 3.0"),
    ],
)
def test_bad_specs_name_the_value(spec, stage, match):
    with pytest.raises(ValueError, match=match):
        resolve_kernel_size(spec, 256, stage)
