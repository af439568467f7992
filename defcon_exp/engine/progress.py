"""tqdm progress bars (epoch + batch), silent when not on a TTY or when disabled."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


def progress_enabled(requested: bool) -> bool:
    """Bars are shown only when requested and stderr is an interactive terminal."""
    return bool(requested) and sys.stderr.isatty()


def epoch_bar(start: int, total: int, enabled: bool) -> tqdm:
    """The outer bar over epochs ``start..total``."""
    return tqdm(total=total, initial=start, desc="epochs", unit="ep", disable=not enabled,
                dynamic_ncols=True, position=0)


def batch_bar(iterable: Iterable[Any], total: int, desc: str, enabled: bool) -> tqdm:
    """The inner bar over one epoch's batches; cleared when done."""
    return tqdm(iterable, total=total, desc=desc, unit="it", leave=False, disable=not enabled,
                dynamic_ncols=True, position=1)


def logging_through_bars(enabled: bool) -> contextlib.AbstractContextManager:
    """While bars are shown, console log lines go through ``tqdm.write`` (printed above the
    bars instead of inside them); file handlers (``train.log``) are untouched."""
    return logging_redirect_tqdm() if enabled else contextlib.nullcontext()
