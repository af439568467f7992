"""Pre-emption: SIGTERM / SIGINT (and submitit's requeue signal) stop a run cleanly.

While :func:`stop_on_signals` is active (in the main thread) those signals only set a flag;
the loop finishes its step, a full checkpoint is written and :class:`TrainingInterrupted`
is raised. A second SIGINT aborts at once (``KeyboardInterrupt``). Under submitit (Hydra's
SLURM launcher) its pre-emption/time-limit signal (SIGUSR2) is handled the same way; the
caller then hands it on to submitit's handler (:func:`requeue_signal`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["TrainingInterrupted", "requeue_signal", "stop_on_signals"]

log = logging.getLogger("defcon_exp.engine.fit")


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after a clean step; a resumable checkpoint was written."""

    def __init__(self, message: str, signum: int, checkpoint: Path) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        """The shell convention for death by signal: 128 + signal number (130, 143)."""
        return 128 + self.signum


def requeue_signal() -> int | None:
    """submitit's pre-emption/time-limit signal (``SIGUSR2``, or ``$SUBMITIT_PREEMPT_SIGNAL``)
    when a Python handler owns it (submitit's, which requeues the job), else None. While
    :func:`fit` runs it stops the run like SIGTERM, so the checkpoint is written before the
    caller calls that handler."""
    signum = getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}", None)
    if not isinstance(signum, signal.Signals) or not callable(signal.getsignal(signum)):
        return None
    return signum


@contextmanager
def stop_on_signals(enabled: bool = True) -> Iterator[Callable[[], int | None]]:
    """While active, SIGTERM/SIGINT set a flag instead of killing the process.

    Yields a function returning the received signal number (or None). A second SIGINT
    raises ``KeyboardInterrupt`` at once. Only the main thread can own signals; elsewhere
    (or when ``enabled`` is false) this is a no-op that never reports a signal.
    """
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, _frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not received:
            log.warning("received %s: stopping after the current step and writing a checkpoint "
                        "(Ctrl-C again to abort without one)", signal.Signals(signum).name)
        received.append(signum)

    watched = [signal.SIGTERM, signal.SIGINT, requeue_signal()]
    previous = {sig: signal.signal(sig, handler) for sig in watched if sig is not None}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
