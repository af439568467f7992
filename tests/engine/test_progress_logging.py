"""While tqdm bars are shown, console log lines go through tqdm (above the bars); the log
file keeps its own handler."""

from __future__ import annotations

import io
import logging
import sys

from tqdm.contrib.logging import _TqdmLoggingHandler

from defcon_exp.engine.progress import logging_through_bars


def test_console_handlers_go_through_tqdm_only_while_bars_are_shown(tmp_path) -> None:
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    file_handler = logging.FileHandler(tmp_path / "train.log")
    before = list(root.handlers)
    root.handlers = [console, file_handler]
    try:
        with logging_through_bars(False):
            assert root.handlers == [console, file_handler]
        with logging_through_bars(True):
            kinds = [type(h) for h in root.handlers]
            assert _TqdmLoggingHandler in kinds and logging.FileHandler in kinds
            assert console not in root.handlers
        assert root.handlers == [console, file_handler]  # restored
    finally:
        file_handler.close()
        root.handlers = before


def test_a_line_logged_under_bars_is_written_by_tqdm(monkeypatch) -> None:
    written = io.StringIO()
    root, before = logging.getLogger(), list(logging.getLogger().handlers)
    root.handlers = [logging.StreamHandler(sys.stderr)]
    monkeypatch.setattr("tqdm.std.tqdm.write",
                        classmethod(lambda cls, s, file=None, end="\n", nolock=False: written.write(s + end)))
    try:
        with logging_through_bars(True):
            logging.getLogger("defcon_exp.test").warning("epoch 1/3 done")
    finally:
        root.handlers = before
    assert "epoch 1/3 done" in written.getvalue()
