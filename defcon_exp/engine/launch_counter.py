"""Count the kernels a computation launches, without a GPU: a ``TorchDispatchMode`` that
sees every ATen op below autograd (forward and backward) and counts those that launch a
kernel on a GPU.

What counts as one launch: one dispatched ATen op that computes something (an elementwise
op, a reduction, a copy or cast, a convolution, a matmul, a fill). What does not: views
and other metadata-only ops (``view``, ``expand``, ``transpose``, ``detach``,
``_unsafe_view``, ...), allocations (``empty*``), and host reads (``_local_scalar_dense``,
``.item()``: counted separately as :attr:`LaunchCounter.host_syncs`). It is an estimate
of a CUDA step's launches, not a trace: an op whose CUDA kernel launches several kernels
(cuDNN's convolutions, ``constant_pad_nd``'s fill + copy) counts once, and a fused
``_foreach_*`` op once.

Ops registered with ``torch.library`` are not counted as one: pass their Python
implementation in ``expand`` and the aten ops it runs are counted instead (a custom op
costs the kernels its implementation launches). A Triton kernel is not an ATen op: each
launch through :func:`defcon_exp.ops.triton_launch.launch` (the only launcher) counts as
one kernel, under ``triton.<kernel name>`` (on ``meta`` the launch is counted, not run),
and the ATen ops around it (the zero fill of a backward's atomic buffer, casts) count as
ATen ops. Run the counted code under
:func:`defcon_exp.ops.kernel_paths.simulate_cuda_paths` to follow the CUDA code paths on
a CPU.

    with simulate_cuda_paths(), LaunchCounter() as counter:
        model(x).sum().backward()
    counter.total, counter.by_op.most_common(5)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from defcon_exp.ops.triton_launch import add_launch_listener, remove_launch_listener

__all__ = ["NO_KERNEL_OPS", "LaunchCounter", "launches_kernel"]

_aten = torch.ops.aten
#: ATen ops that are not flagged as views but launch no kernel
NO_KERNEL_OPS: frozenset[Any] = frozenset(
    {
        _aten.empty.memory_format,
        _aten.empty_strided.default,
        _aten.empty_like.default,
        _aten.new_empty.default,
        _aten.new_empty_strided.default,
        _aten._unsafe_view.default,
        _aten.lift_fresh.default,
        _aten.set_.source_Storage_storage_offset,
        _aten.resize_.default,
        _aten._local_scalar_dense.default,
    }
)


def launches_kernel(func: Any) -> bool:
    """Whether the ATen op overload ``func`` launches a kernel (see the module docstring)."""
    returns_tensor = any(isinstance(r.type, torch.TensorType) for r in func._schema.returns)
    return returns_tensor and not (func.is_view or func in NO_KERNEL_OPS)


def _is_composite(func: Any) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")


class LaunchCounter(TorchDispatchMode):
    """Counts kernel launches of the ops run inside it (see the module docstring).

    Args:
        expand: custom op overload -> its Python implementation, run under the counter so
            that its ATen ops are counted instead of the custom op itself.
    """

    def __init__(self, expand: Mapping[Any, Callable[..., Any]] | None = None) -> None:
        super().__init__()
        self.expand = dict(expand or {})
        #: launches per op name (``"aten.mm.default"``)
        self.by_op: Counter[str] = Counter()
        #: host reads of device values (``.item()``, ``.tolist()``, ``bool(tensor)``)
        self.host_syncs = 0
        self._depth = 0  # the mode re-enters itself; listen to Triton launches once

    def __enter__(self) -> LaunchCounter:
        if self._depth == 0:
            add_launch_listener(self._count_triton)
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._depth -= 1
        if self._depth == 0:
            remove_launch_listener(self._count_triton)

    def _count_triton(self, kernel: str) -> None:
        self.by_op[f"triton.{kernel}"] += 1

    @property
    def total(self) -> int:
        """All launches counted so far."""
        return sum(self.by_op.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        implementation = self.expand.get(func)
        if implementation is not None:
            with self:  # re-enter: the implementation's own ops are counted
                return implementation(*args, **kwargs)
        if _is_composite(func):
            # seen before its decomposition (inside an expanded implementation autograd is
            # off, so composite ops such as ``to`` or ``pad`` reach the mode whole): count
            # the ops it decomposes into, as the model's own code is counted
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        if func is _aten._local_scalar_dense.default:
            self.host_syncs += 1
        elif launches_kernel(func):
            self.by_op[str(func)] += 1
        return func(*args, **kwargs)
