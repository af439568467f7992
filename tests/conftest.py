"""Suite-wide set-up: the tests' tiny model builders are trusted as ``model._target_``.

Production code builds models by name and refuses any other ``_target_``
(:mod:`defcon_exp.safety`); the person running a command may list their own builders in
``$DEFCON_TRUSTED_MODEL_TARGETS``. The tests do that for theirs (subprocesses, sweep workers
and torchrun ranks inherit it).
"""

from __future__ import annotations

import os

# One intra-op thread per test process: the workers of `-n auto` already fill every core, and
# each of them (and each `defcon-train` it starts) taking all cores for tiny tensors made them
# wait on each other's OpenMP threads. Set before torch loads its OpenMP runtime (it reads the
# variable once); subprocesses inherit it, so a test's in-process reference and its subprocess
# run sum floats the same way. A command line that sets OMP_NUM_THREADS itself wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

from defcon_exp.safety import TRUSTED_MODELS_ENV

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # also if a plugin loaded torch first

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

#: the longest tests (node-id prefixes, longest first), started first so that no worker is left
#: with one of them at the end while the other idles. From `pytest -n 2 -m slow --durations=60`
#: on the 2-core VM (busy: load 10-15; seconds there): smoke 902 (its 900 s timeout), the
#: analysis runs' fixture 142, the install 211, the layout checks of the zoo 50-150 each...
LONGEST_FIRST: tuple[str, ...] = (
    "tests/cli/test_smoke.py",
    "tests/reliability/test_kill_resume.py",  # its reference run and three kill/resume tests
    "tests/analysis/test_analysis_runs.py",  # three ResNet-50 runs read by five tests
    "tests/distributed/test_torchrun.py",
    "tests/cli/test_install.py",
    "tests/models/test_layout_and_autocast.py::test_channels_last_equals_contiguous",
    "tests/scripts/test_gpu_check.py::test_kernel_comparison_code_paths_run_on_the_cpu",
    "tests/search/test_sweeper_cli.py::test_every_refusal_is_one_line_and_leaves_nothing",
    "tests/cli/test_launchers.py::test_sigterm_to_a_parallel_sweep_stops_its_workers_with_checkpoints",
    "tests/reliability/test_debug_runs.py",
    "tests/reliability/test_kill_resume_regularisation.py",
    "tests/imagefolder/test_folder_runs.py::test_sigkill_mid_epoch_then_resume_is_exact",
    "tests/reliability/test_refusals_cli.py",
    "tests/cli/test_launchers.py",
    "tests/imagefolder/test_folder_runs.py",
    "tests/models/test_layout_and_autocast.py",
    "tests/search/test_search_runs.py",
    "tests/analysis/test_compare.py",
    # the fast suite's longest (`pytest -q -n 2 --durations=40`, load 1-6: 10-50 s each)
    "tests/cli/test_train_cli.py",
    "tests/ops/test_scale_add_relu.py::test_fused_model_equals_unfused_model",
    "tests/distributed/test_collectives.py",
    "tests/ops/test_triton_gate.py::test_gate_many_programs_and_logits",
    "tests/engine/test_attention_histograms.py",
    "tests/cli/test_failed_starts.py",
    "tests/ops/test_triton_models.py",
    "tests/models/test_resnet.py::test_forward_backward_every_model",
    "tests/reliability/test_config_errors.py",
    "tests/distributed/test_syncs_per_step.py",
)


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
