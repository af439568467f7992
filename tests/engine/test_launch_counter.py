"""LaunchCounter counts, on hand-countable graphs, the ATen ops that launch a kernel."""

from __future__ import annotations

import torch

from defcon_exp.engine.launch_counter import LaunchCounter, launches_kernel


def test_matmul_relu_sum_forward_and_backward():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(3, 2, requires_grad=True)
    with LaunchCounter() as counter:
        loss = (x @ w).relu().sum()
        forward = counter.total
        loss.backward()
    # forward: mm, relu, sum. backward: the ones seed, sum's backward is an expand (a view,
    # not counted), relu's threshold_backward, and one mm for each of x and w
    assert forward == 3
    assert counter.total == 7
    assert counter.by_op["aten.mm.default"] == 3
    assert counter.host_syncs == 0


def test_views_and_allocations_are_not_launches():
    x = torch.randn(2, 3, 4)
    with LaunchCounter() as counter:
        x.view(6, 4).t().unsqueeze(0).expand(5, 4, 6).transpose(1, 2)
        x.permute(2, 0, 1)[1:, :, ::2].reshape(3, 2, 2)  # a view: strides allow it
        torch.empty(10)
        torch.empty_like(x)
    assert counter.total == 0
    assert not launches_kernel(torch.ops.aten.view.default)
    assert launches_kernel(torch.ops.aten.add.Tensor)


def test_copies_casts_and_host_reads():
    x = torch.randn(3, 4)
    with LaunchCounter() as counter:
        x.t().contiguous()  # one copy
        x.to(torch.float64)  # one cast
        x.to(torch.float32)  # already float32: nothing
        x.sum().item()  # a reduction, then a host read
    assert counter.total == 3
    assert counter.host_syncs == 1


@torch.library.custom_op("launch_counter_test::twice_plus_one", mutates_args=())
def twice_plus_one(x: torch.Tensor) -> torch.Tensor:
    return x * 2 + 1


def test_custom_op_counts_as_its_implementation_when_expanded():
    x = torch.randn(5)
    with LaunchCounter() as opaque:
        twice_plus_one(x)
    assert opaque.total == 1
    op = torch.ops.launch_counter_test.twice_plus_one.default
    with LaunchCounter({op: lambda t: t * 2 + 1}) as expanded:
        out = twice_plus_one(x)
    assert expanded.total == 2 and expanded.by_op["aten.mul.Tensor"] == 1
    torch.testing.assert_close(out, x * 2 + 1)
