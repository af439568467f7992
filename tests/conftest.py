"""Suite-wide set-up: the tests' tiny model builders are trusted as ``model._target_``.

Production code builds models by name and refuses any other ``_target_``
(:mod:`defcon_exp.safety`); the person running a command may list their own builders in
``$DEFCON_TRUSTED_MODEL_TARGETS``. The tests do that for theirs (subprocesses, sweep workers
and torchrun ranks inherit it).
"""

from __future__ import annotations

import os

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
