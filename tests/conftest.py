"""Suite-wide set-up: the tests' tiny model builders are trusted as ``model._target_``.

Production code builds models by name and refuses any other ``_target_``
(:mod:`defcon_exp.safety`); the person running a command may list their own builders in
``$DEFCON_TRUSTED_MODEL_TARGETS``. The tests do that for theirs (subprocesses, sweep workers
and torchrun ranks inherit it).
"""

from __future__ import annotations

import os

import pytest
import torch

from defcon_exp.safety import TRUSTED_MODELS_ENV

TEST_MODEL_BUILDERS = (
    "tiny_net.tiny_cifar_model",
    "tiny_net.crashing_model",
    "ddp_net.ddp_tiny_model",
    "attention_net.tiny_attention_net",
    "staged_net.tiny_staged_net",
)
os.environ[TRUSTED_MODELS_ENV] = ",".join(TEST_MODEL_BUILDERS)

# Without a GPU the Triton kernels run in Triton's CPU interpreter (tests/ops/triton_setup.py).
# It must be on before anything imports triton.language (torch._dynamo does, during
# collection), or its standard library is built for the compiler and the interpreter fails.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# --- scheduling on pytest-xdist workers (pyproject: --dist loadgroup --no-loadscope-reorder) ---

#: module-scoped fixtures that train real runs, read by several tests of their module: those
#: tests go to one worker (an xdist group), so the runs are trained once, not once per worker
SHARED_RUN_FIXTURES = frozenset({"runs_root", "runs", "reference", "ddp_run", "finished", "resumable"})

#: the longest tests (node-id prefixes), started first so that no worker is left with one of
#: them at the end while the other idles; measured with --durations on the 2-core VM
LONGEST_FIRST: tuple[str, ...] = ()


def _rank(item: pytest.Item) -> int:
    nodeid = item.nodeid.split("@", 1)[0]
    for index, prefix in enumerate(LONGEST_FIRST):
        if nodeid.startswith(prefix):
            return index
    return len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before xdist turns the group marks into node-id suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SHARED_RUN_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    items.sort(key=_rank)  # stable: the rest keeps the collection order
