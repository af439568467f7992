"""What a finished run keeps of its checkpoints (``trainer.keep_checkpoints``).

A running or interrupted run always has a full ``last.pt`` (weights, optimiser, schedule,
RNG) to resume from; only once ``summary.json`` is written may the policy shrink it:

- ``all`` (and ``auto``: a single run; a sweep's jobs arrive as ``last_slim``): keep ``last.pt``
  as it is (the run can be extended: ``resume=<dir> trainer.epochs=N``);
- ``last_slim``: rewrite ``last.pt`` with the weights-only payload (the final weights, as in
  ``best.pt``; about 1/2 (SGD) to 1/3 (AdamW) of the bytes) marked :data:`SLIM_KEY`;
- ``best``: delete ``last.pt`` when a ``best.pt`` exists (else slim it: some weights stay).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["KEEP_POLICIES", "SLIM_KEY", "apply_keep_policy"]

log = logging.getLogger("defcon_exp.engine.fit")

#: ``trainer.keep_checkpoints`` choices (the config rules check against this list)
KEEP_POLICIES = ("auto", "all", "last_slim", "best")
#: key of a slimmed ``last.pt``: its value says why the optimiser state is missing
SLIM_KEY = "slim"


def apply_keep_policy(policy: str, ckpt_dir: Path, weights_only_payload: dict[str, Any],
                      save: Any) -> None:
    """Shrink a finished run's checkpoints in ``ckpt_dir`` by ``policy`` (see the module
    docstring); ``save(name, payload)`` writes a checkpoint atomically."""
    if policy not in KEEP_POLICIES:
        raise ValueError(f"trainer.keep_checkpoints={policy!r} is invalid: one of {KEEP_POLICIES}")
    last = ckpt_dir / "last.pt"
    if policy in ("all", "auto") or not last.is_file():
        return
    if policy == "best" and (ckpt_dir / "best.pt").is_file():
        last.unlink()
        log.info("trainer.keep_checkpoints=best: removed %s (best.pt kept)", last)
        return
    payload = dict(weights_only_payload)
    payload[SLIM_KEY] = (
        f"the run finished and trainer.keep_checkpoints={policy} dropped the optimiser state"
    )
    save("last.pt", payload)
    log.info("trainer.keep_checkpoints=%s: %s keeps the final weights only", policy, last)
