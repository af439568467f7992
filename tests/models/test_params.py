import pytest

from defcon_exp.analysis.params import PAPER_PARAMS
from defcon_exp.cli.params import main
from defcon_exp.models import count_parameters, create_model

# Table 1 of the paper, written out here independently of the product code.
TABLE_1 = {
    "resnet50": 23_705_252,
    "se": 26_220_196,
    "eca": 23_705_332,
    "defcon": 23_705_756,
}


@pytest.mark.parametrize(("name", "params"), TABLE_1.items())
def test_paper_parameter_counts_exactly(name, params):
    assert count_parameters(create_model(name, num_classes=100, device="meta")) == params


def test_other_counts():
    def count(name, **kw):
        return count_parameters(create_model(name, num_classes=100, device="meta", **kw))

    assert count("defcon_shuffle") == TABLE_1["defcon"]
    assert (
        count("eca", kernel_size="adaptive") == TABLE_1["resnet50"] + 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7
    )
    assert count("defcon", kernel_size="adaptive") == TABLE_1["resnet50"] + 13 * 30 + 3 * 56
    assert count("cbam") == TABLE_1["se"] + 16 * (2 * 49 + 2)


def test_defcon_params_prints_the_table(capsys):
    main([])
    out = capsys.readouterr().out
    for name, params in TABLE_1.items():
        assert (
            f"| {name} |" in out
            and f"{params:,} | +{params - TABLE_1['resnet50']:,} | {params:,} ✓" in out
        )
    assert "5,5,5,7" in out and "3,5,5,7" in out and "| cbam |" in out
    assert "✗" not in out
    assert set(PAPER_PARAMS) >= set(TABLE_1)


def test_defcon_params_rejects_bad_class_count(capsys):
    assert main(["--num-classes", "0"]) == 2
    assert "--num-classes must be positive, received 0" in capsys.readouterr().err
    assert main(["num_classes=x"]) == 2
    assert capsys.readouterr().err == (
        "defcon-params: error: num_classes='x' is not an integer: give e.g. num_classes=100\n"
    )


# The zoo (docs/zoo.md): what each module adds to the ResNet-50, summed by hand over its 16
# bottlenecks (channels C of each block's output; FcaNet, GC, GE: C/16 = h; coord: C/32).
BLOCK_CHANNELS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
PAPER_K = [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
ZOO_EXTRA = {
    "gc": sum(2 * c * (c // 16) + 2 * c + 3 * (c // 16) + 1 for c in BLOCK_CHANNELS),
    "ge": sum(2 * c * (c // 16) + c // 16 + c for c in BLOCK_CHANNELS),
    "eca_circular": sum(PAPER_K),
    "fca": sum(2 * c * (c // 16) for c in BLOCK_CHANNELS),
    "gct": sum(3 * c for c in BLOCK_CHANNELS),
    "srm": sum(4 * c for c in BLOCK_CHANNELS),
    "simam": 0,
    "coord": sum(3 * c * (c // 32) + 3 * (c // 32) + 2 * c for c in BLOCK_CHANNELS),
}


@pytest.mark.parametrize(("name", "extra"), ZOO_EXTRA.items())
def test_zoo_parameter_counts_by_hand(name, extra):
    params = count_parameters(create_model(name, num_classes=100, device="meta"))
    assert params == TABLE_1["resnet50"] + extra


def test_defcon_params_lists_the_zoo(capsys):
    main([])
    rows: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():
        rows.setdefault(line.split(" | ")[0][2:], line)  # eca_circular: the "paper" row first
    for name, extra in ZOO_EXTRA.items():
        params = TABLE_1["resnet50"] + extra
        assert f"| {params:,} | +{extra:,} | - |" in rows[name], rows.get(name)
