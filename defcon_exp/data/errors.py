"""The data layer's user-facing error (a leaf module: every data module may import it)."""

from __future__ import annotations

__all__ = ["DatasetNotFoundError"]


class DatasetNotFoundError(RuntimeError):
    """The data set is not on disk and cannot be downloaded. ``str(error)`` is a complete,
    user-facing paragraph (print it without a traceback)."""
