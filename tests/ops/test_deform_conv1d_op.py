"""The deformable op as a ``torch.library`` custom op: registration (schema, fake, autograd)
checked by ``torch.library.opcheck``, float64 gradcheck through the op, the CUDA code path
(simulated on CPU) equal to the CPU one, and ``torch.compile`` seeing one op, no graph break."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters
from torch.autograd import gradcheck

from defcon_exp.ops import deform_conv1d
from defcon_exp.ops.deform_conv1d_op import deform_conv1d_forward, sampling_grid
from defcon_exp.ops.kernel_paths import simulate_cuda_paths

from .reference import deform_conv1d_loops

FORWARD = torch.ops.defcon_exp.deform_conv1d_forward.default
BACKWARD = torch.ops.defcon_exp.deform_conv1d_backward.default


def _leaves(dtype=torch.float64, mask=False, batch=2, channels=4, length=9, k=3, og=2, groups=2):
    gen = torch.Generator().manual_seed(0)
    # fractional offsets >= 0.2 from integers: the op is piecewise linear in the offset
    frac = torch.rand(batch, og * k, length, generator=gen, dtype=dtype) * 0.6 + 0.2
    offset = frac + torch.randint(-3, 4, (batch, og * k, length), generator=gen).to(dtype)
    leaves = [
        torch.randn(batch, channels, length, generator=gen, dtype=dtype),
        offset,
        torch.randn(6, channels // groups, k, generator=gen, dtype=dtype),
        torch.rand(batch, og * k, length, generator=gen, dtype=dtype) if mask else None,
    ]
    return [t if t is None else t.requires_grad_() for t in leaves]


@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
def test_opcheck_forward(mask):
    input, offset, weight, m = _leaves(mask=mask)
    torch.library.opcheck(deform_conv1d_forward, (input, offset, weight, m, 1, 1, 1, 2, 2))


@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
def test_gradcheck_float64_through_the_custom_op(mask):
    leaves = _leaves(mask=mask)
    tensors = tuple(t for t in leaves if t is not None)

    def func(*args):
        input, offset, weight, *rest = args
        return deform_conv1d_forward(input, offset, weight, rest[0] if rest else None, 1, 1, 1, 2, 2)[0]

    assert gradcheck(func, tensors, eps=1e-6, atol=1e-7)


def test_custom_op_equals_the_loop_reference():
    input, offset, weight, mask = _leaves(mask=True)
    out = deform_conv1d(input, offset, weight, padding=1, mask=mask)
    expected = deform_conv1d_loops(input, offset, weight, padding=1, mask=mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
def test_cuda_path_equals_cpu_path(groups):
    input, offset, weight, _ = _leaves(dtype=torch.float32, og=groups, groups=groups, channels=4)
    if groups == 1:  # DEFCON's case: one input channel, one output (the bmm branch)
        input = input[:, :1].detach().requires_grad_()
        weight = weight[:1, :1].detach().requires_grad_()
        offset = offset[:, :3].detach().requires_grad_()
    out = deform_conv1d(input, offset, weight, padding=1)
    grads = torch.autograd.grad(out.square().sum(), (input, offset, weight))
    with simulate_cuda_paths():
        out_cuda = deform_conv1d(input, offset, weight, padding=1)
        grads_cuda = torch.autograd.grad(out_cuda.square().sum(), (input, offset, weight))
    torch.testing.assert_close(out_cuda, out)
    for g_cuda, g in zip(grads_cuda, grads, strict=True):
        torch.testing.assert_close(g_cuda, g)


def test_sampling_grid_is_cached_and_exact():
    like = torch.zeros(1)
    grid = sampling_grid(5, 3, 2, 1, 2, like)
    # tap n, output p: p * stride - padding + n * dilation + 2 (the padding of two)
    expected = torch.tensor([[p * 2 - 1 + n * 2 + 2 for p in range(5)] for n in range(3)])
    torch.testing.assert_close(grid, expected.float())
    assert sampling_grid(5, 3, 2, 1, 2, like) is grid
    assert sampling_grid(5, 3, 2, 1, 2, like.double()).dtype == torch.float64


def test_compile_sees_one_op_each_way_and_no_graph_break():
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm, example_inputs):
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd

        def capture(g, _):
            graphs.append(g)
            return make_boxed_func(g)

        return aot_autograd(fw_compiler=capture, bw_compiler=capture)(gm, example_inputs)

    torch._dynamo.reset()
    counters.clear()
    input, offset, weight, _ = _leaves(dtype=torch.float32)

    def attention_like(x, off, w):
        return torch.sigmoid(deform_conv1d(x * 2, off, w, padding=1)).sum()

    compiled = torch.compile(attention_like, backend=backend, fullgraph=True)
    compiled(input, offset, weight).backward()
    assert not counters["graph_break"]
    targets = [[n.target for n in g.graph.nodes if n.op == "call_function"] for g in graphs]
    assert len(graphs) == 2  # forward and backward
    assert targets[0].count(FORWARD) == 1 and targets[1].count(BACKWARD) == 1
    # and the compiled gradient is the eager one
    expected = torch.autograd.grad(attention_like(input, offset, weight), weight)[0]
    torch.testing.assert_close(weight.grad, expected)
