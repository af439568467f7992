"""``torch.compile`` (``trainer.compile``) on the CPU with a small DEFCON network.

Inductor needs a C++ compiler; without one (or without a working inductor) these tests
skip with the reason. Compilation is the cost here (~30 s cold on 2 cores): the comparison
and the ``train()`` run use the same network and batch shape, so the second finds
inductor's cache warm.
"""

from __future__ import annotations

import copy

import pytest
import torch
from attention_net import BATCH, tiny_attention_net, tiny_net_config
from torch._dynamo.utils import counters

from defcon_exp.engine.checkpoint import load_checkpoint, load_model_state
from defcon_exp.run.train import train


@pytest.fixture(scope="module")
def inductor() -> None:
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.randn(4))
    except Exception as err:  # no C++ compiler, or inductor broken on this platform
        pytest.skip(f"torch.compile (inductor) does not work here: {type(err).__name__}: {err}")


def test_compiled_defcon_block_matches_eager(inductor):
    torch.manual_seed(0)
    model = tiny_attention_net()
    assert model[3].fused_tail
    twin = copy.deepcopy(model)
    compiled = torch.compile(twin)
    images = torch.randn(BATCH, 3, 32, 32)
    grad = torch.randn(BATCH, 4)

    out = model(images)
    out_c = compiled(images)
    torch.testing.assert_close(out_c, out, rtol=1e-4, atol=1e-5)
    out.backward(grad)
    out_c.backward(grad)
    for (name, p), p_c in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert p_c.grad is not None, name
        # float32 reassociation: BatchNorm-weight gradients (sums of cancelling terms) differ
        # by up to ~1e-3 relative; in float64 everything agrees to 1e-12. A wrong gradient
        # path is off by O(1).
        error = (p_c.grad - p.grad).norm() / p.grad.norm().clamp_min(1e-12)
        assert error < 1e-2, f"{name}: compiled gradient {error:.2e} away from eager"
    # the offset branch is really trained (zero-initialised offsets get a gradient)
    assert twin[3].attention.offset_conv.weight.grad.abs().sum() > 0

    model.eval()
    compiled.eval()
    with torch.inference_mode():
        torch.testing.assert_close(compiled(images), model(images), rtol=1e-4, atol=1e-5)
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())


def test_train_with_compile_saves_plain_keys_and_resumes_either_way(inductor, tmp_path):
    run = tmp_path / "run"
    torch._dynamo.reset()  # trace anew (inductor's on-disk cache still makes it quick)
    counters.clear()
    summary = train(tiny_net_config(run, "trainer.epochs=1", "trainer.compile=true"))
    assert counters["stats"]["unique_graphs"] >= 2  # the training and the evaluation forward
    assert summary["epochs"] == 1 and torch.isfinite(torch.tensor(summary["test"]["loss"]))
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["model"] and not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    assert ckpt["config"]["trainer"]["compile"] is True

    # a compiled run's checkpoint into a plain model: evaluation and an uncompiled resume
    plain = tiny_attention_net()
    load_model_state(plain, ckpt["model"], "last.pt")
    cfg = tiny_net_config(run, "trainer.epochs=2", "trainer.compile=false")
    cfg.resume = str(run)
    counters.clear()
    assert train(cfg)["epochs"] == 2
    assert not counters["stats"]["unique_graphs"]  # really eager
    # and the uncompiled checkpoint back into a compiled run
    cfg = tiny_net_config(run, "trainer.epochs=3", "trainer.compile=default")
    cfg.resume = str(run)
    assert train(cfg)["epochs"] == 3
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    assert final["epoch"] == 3 and final["model"].keys() == ckpt["model"].keys()


def test_load_model_state_sees_through_compile_wrappers(inductor):
    model = tiny_attention_net()
    compiled = torch.compile(tiny_attention_net())  # never called: no compilation cost
    load_model_state(compiled, model.state_dict(), "plain")  # plain keys into a wrapper
    plain = tiny_attention_net()
    load_model_state(plain, compiled.state_dict(), "compiled")  # _orig_mod. keys into plain
    for key, value in model.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value), key


@pytest.mark.parametrize(
    "attention",
    ["defcon", "defcon_shuffle", "defcon_corr", "defcon_mix", "defcon_mod", "defcon_released", "cbam"],
)
@pytest.mark.parametrize("precision", [None, torch.bfloat16], ids=["32", "bf16"])
def test_attention_blocks_trace_without_graph_breaks(attention, precision):
    # Dynamo only (no inductor): the custom autograd Functions (deform op, fused tail) and
    # the op's autocast switch trace into one graph, in channels_last too.
    torch._dynamo.reset()
    model = tiny_attention_net(attention=attention).to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=precision or torch.bfloat16, enabled=precision is not None):
        explanation = torch._dynamo.explain(model)(images)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
