"""defcon-compare: the agreement measures against hand computations, and the whole command on
real tiny trainings (:mod:`staged_net`, synthetic data), whose numbers are recomputed here
with numpy from the saved weights on the same images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from staged_net import TINY_STAGED, tiny_staged_net

from defcon_exp.analysis.compare import class_channel_map, linear_cka, spearman, spearman_per_image
from defcon_exp.cli import compare as compare_cli
from defcon_exp.cli import inspect as inspect_cli
from defcon_exp.data import build_data
from defcon_exp.run.build import build_model
from defcon_exp.run.train import train
from defcon_exp.safety import UnsafeConfigError

#: the runs trained once for this module: model -> run dir name
MODELS = ("se", "defcon", "resnet50")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 (continuous values: no ties)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks


def _hand_spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the ranks, from its definition."""
    ra, rb = _ranks(a) - _ranks(a).mean(), _ranks(b) - _ranks(b).mean()
    return float((ra * rb).sum() / math.sqrt((ra * ra).sum() * (rb * rb).sum()))


def _hand_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019, eq. for linear CKA in feature space:
    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` of the column-centred matrices."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_linear_cka_equals_the_feature_space_formula_and_its_invariances() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 6)), rng.normal(size=(12, 9))
    assert linear_cka(x, y) == pytest.approx(_hand_cka(x, y), rel=1e-10)
    assert 0.0 < linear_cka(x, y) < 1.0
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 1.5) == pytest.approx(1.0)  # rotation, scale, shift
    assert linear_cka(x, x[:, rng.permutation(6)]) == pytest.approx(1.0)  # channel order
    assert linear_cka(x, np.ones((12, 4))) is None  # every image weighted alike


def test_spearman_equals_rank_pearson() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))
    assert spearman(a[0], b[0]) == pytest.approx(_hand_spearman(a[0], b[0]))
    assert spearman(a[0], np.exp(a[0])) == pytest.approx(1.0)  # monotone map: same ranks
    expected = np.mean([_hand_spearman(x, y) for x, y in zip(a, b, strict=True)])
    assert spearman_per_image(a, b) == pytest.approx(expected)
    b[2] = 0.5  # a constant image: undefined, left out of the mean
    expected = np.mean([_hand_spearman(x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if i != 2])
    assert spearman_per_image(a, b) == pytest.approx(expected)
    assert spearman(a[0], a[0][:10]) is None  # channel counts differ


def test_class_channel_map_by_hand() -> None:
    weights = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    table = class_channel_map(weights, np.array([1, 0, 1]), 3)
    np.testing.assert_allclose(table[:2], [[3.0, 4.0], [3.0, 4.5]])
    assert np.isnan(table[2]).all()


def test_build_model_uses_the_trusted_builder_and_refuses_others() -> None:
    """The tiny runs below really are tiny: a ``_target_`` listed in
    ``$DEFCON_TRUSTED_MODEL_TARGETS`` builds that model (it once fell back to ResNet-50)."""
    node = {"attention": "se", "kernel_size": "adaptive", "attention_kwargs": {}, "stem": "cifar"}
    model = build_model(OmegaConf.create({"_target_": "staged_net.tiny_staged_net", **node}), 4, "cpu")
    assert type(model).__name__ == "StagedNet" and len(model.stages) == 2
    with pytest.raises(UnsafeConfigError, match="was refused"):
        build_model(OmegaConf.create({"_target_": "os.system", **node}), 4, "cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real 1-epoch trainings of the tiny staged net: se, defcon, and none (resnet50)."""
    root = tmp_path_factory.mktemp("runs")
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        for model in MODELS:
            cfg = compose("config", overrides=[f"model={model}", *TINY_STAGED, "trainer.epochs=1"])
            train(cfg, run_dir=root / model)
    return {model: root / model for model in MODELS}


@torch.no_grad()
def _hand_weights(run: Path, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per stage ``[N, C]``: the saved model's channel weights, from its forward-path
    ``channel_weights`` on each block's captured ``bn3`` output, averaged over blocks."""
    cfg = OmegaConf.load(run / "config.yaml")
    model = tiny_staged_net(4, cfg.model.attention, cfg.model.kernel_size)
    state = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    captured: dict[tuple[int, int], torch.Tensor] = {}
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            block.bn3.register_forward_hook(lambda _m, _a, out, key=(s, b): captured.__setitem__(key, out))
    model(images)
    out = {}
    for s, stage in enumerate(model.stages):
        per_block = [stage[b].attention.channel_weights(captured[(s, b)])[:, :, 0, 0] for b in range(len(stage))]
        out[str(s + 1)] = torch.stack(per_block).mean(0).double().numpy()
    return out


def _same_images(run: Path, count: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """The documented choice: ``count`` of the test split's images drawn by ``randperm(seed)``."""
    cfg = OmegaConf.load(run / "config.yaml")
    data = build_data(cfg.data, seed=cfg.seed)
    images, labels = (torch.cat(parts) for parts in zip(*data.test, strict=True))
    chosen = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return images[chosen], labels[chosen].numpy()


@pytest.mark.slow
def test_compare_numbers_equal_a_hand_computation(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [str(runs["se"]), str(runs["defcon"]), str(runs["se"] / "checkpoints" / "best.pt"),
            "images=12", "seed=3", "split=test", f"out={tmp_path}"]
    assert compare_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "spearman/img" in printed and f"-> {tmp_path / 'compare.json'}" in printed
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["num_images"] == 12 and [r["label"] for r in result["runs"]] == ["se", "defcon", "se #2"]
    images, labels = _same_images(runs["se"], 12, seed=3)
    se, defcon = _hand_weights(runs["se"], images), _hand_weights(runs["defcon"], images)
    assert set(result["stages"]) == set(se) == {"1", "2"}
    for stage, values in result["stages"].items():
        a, b = se[stage], defcon[stage]
        pair = next(p for p in values["pairs"] if (p["a"], p["b"]) == ("se", "defcon"))
        by_image = np.mean([_hand_spearman(x, y) for x, y in zip(a, b, strict=True)])
        assert pair["spearman_per_image"] == pytest.approx(by_image, abs=1e-6)
        assert pair["spearman_of_means"] == pytest.approx(_hand_spearman(a.mean(0), b.mean(0)), abs=1e-6)
        # the weights sit near 0.5 with std ~0.01: float32 rounding (1e-7) of the weights
        # becomes ~1e-5 of the centred values CKA sees
        assert pair["cka"] == pytest.approx(_hand_cka(a, b), rel=1e-4)
        # a run with itself (and its checkpoint given twice): CKA and rank correlation 1
        cka = values["matrices"]["cka"]
        assert cka[0][0] == pytest.approx(1.0) and cka[0][2] == pytest.approx(1.0)
        assert values["matrices"]["spearman_per_image"][0][2] == pytest.approx(1.0)
        summary = values["summary"]["se"]
        assert summary["weight_mean"] == pytest.approx(a.mean(), rel=1e-5)  # blocks share N, C
        maps = np.load(tmp_path / "class_maps.npz")[f"stage{stage}/run1"]
        np.testing.assert_allclose(maps, class_channel_map(b, labels, 4), rtol=1e-5, atol=1e-6)
    _assert_real_pngs([tmp_path / f"{kind}_stage{s}.png" for kind in ("agreement", "class_map") for s in "12"])


def _assert_real_pngs(paths: list[Path]) -> None:
    """Readable PNGs of a sensible size with many colours (not blank canvases)."""
    image = pytest.importorskip("PIL.Image")
    for path in paths:
        with image.open(path) as picture:
            assert picture.format == "PNG" and picture.width >= 300 and picture.height >= 200, path
            colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 20, path


@pytest.mark.slow
def test_runs_without_channel_weights_are_skipped_and_others_refused(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [str(runs["se"]), str(runs["resnet50"]), str(runs["defcon"]), "images=4", f"out={tmp_path / 'a'}"]
    assert compare_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 1 and "resnet50 has no attention module with channel weights" in printed
    assert [r["model"] for r in json.loads((tmp_path / "a" / "compare.json").read_text())["runs"]] == ["se", "defcon"]

    assert compare_cli.main([str(runs["se"]), str(runs["resnet50"]), f"out={tmp_path / 'b'}"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "needs at least two" in error and "resnet50" in error


@pytest.mark.slow
def test_runs_of_different_data_are_refused_in_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / "other.pt"  # the defcon run as if trained on another synthetic draw
    state = torch.load(runs["defcon"] / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    state["config"]["data"]["data_seed"] = 5
    torch.save(state, other)
    assert compare_cli.main([str(runs["se"]), str(other), f"out={tmp_path / 'out'}"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "different data" in error and "data.data_seed=0" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_inspect_works_for_a_non_defcon_attention(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert inspect_cli.main([f"ckpt={runs['se']}", "n_images=8", f"out={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    assert "se (SqueezeExcite)" in printed
    stats = json.loads((tmp_path / "inspect.json").read_text())
    images, _ = _same_images(runs["se"], 16, seed=0)  # all 16 test images, in order
    hand = _hand_weights(runs["se"], images[:8])
    for stage in ("1", "2"):
        values = stats["stages"][stage]
        assert "offset_abs_mean" not in values  # SE has no offsets
        assert values["weight_mean"] == pytest.approx(hand[stage].mean(), rel=1e-5)
        assert 0.9 < values["entropy_normalised"] <= 1.0 + 1e-6
