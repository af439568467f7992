"""How counts, throughput figures and caught errors are printed, and what a throughput can
and cannot say (one rule for the log lines, the sweep table, ``defcon-report`` and the
one-line refusals). Torch-free."""

from __future__ import annotations

__all__ = ["SPEED_NOTE", "count_text", "first_line", "format_rate"]

#: what every table with a measured training img/s says about it
SPEED_NOTE = (
    "img/s is measured while the job ran, so it depends on the machine's load (other jobs "
    "of the sweep, other users) and is not a speed comparison of the models; for that, run "
    "scripts/bench_models.py (every model timed side by side in one process)"
)


def format_rate(value: float | None) -> str:
    """``12,345`` from 100 on, one decimal below (``13.9``, ``1.3``), two significant digits
    under 0.1 (``0.043``): a small rate never prints as ``0``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 0.1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def count_text(count: int, singular: str, plural: str | None = None) -> str:
    """``1 batch``, ``2 batches``, ``0 images``."""
    word = singular if count == 1 else plural or (
        f"{singular}es" if singular.endswith(("ch", "sh", "s", "x")) else f"{singular}s")
    return f"{count:,} {word}" if count >= 10_000 else f"{count} {word}"


def first_line(err: BaseException, empty: str | None = None) -> str:
    """The first line of ``err``'s message (a library's multi-line text told in one line);
    ``empty`` (default: the exception's class name) when the message is blank."""
    text = str(err).strip()
    return text.splitlines()[0] if text else (type(err).__name__ if empty is None else empty)
