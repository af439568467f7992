"""Whether a file is an Optuna study database, and how to open one without writing to it.

The sweeper checks its storage file before it writes (a foreign or damaged file is refused,
never given Optuna's schema); ``defcon-report`` reads a search dir's ``optuna.db`` through a
read-only SQLite connection (``mode=ro``), so a report never modifies the study it reads.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["OPTUNA_TABLES", "open_read_only", "study_file_problem"]

#: tables every Optuna RDB storage has (optuna.storages._rdb.models)
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
SQLITE_HEADER = b"SQLite format 3\x00"


def study_file_problem(path: str | Path) -> str | None:
    """None when ``path`` is an Optuna SQLite study; else what it is instead (``"is an empty
    file"``...), for a message that names the file. Opens the file read-only."""
    path = Path(path)
    if path.is_dir():
        return "is a folder, not a database file"
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not head:
        return "is an empty file, not an Optuna study"
    if head != SQLITE_HEADER:
        return "is not a SQLite database (not an Optuna study)"
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as err:
        return f"is a damaged SQLite database ({err})"
    if check != "ok":
        return f"is a damaged SQLite database (quick_check: {check})"
    missing = OPTUNA_TABLES - tables
    if missing:
        return f"is a SQLite database without Optuna's tables ({', '.join(sorted(missing))} missing)"
    return None


def open_read_only(path: str | Path) -> Any:
    """An Optuna storage reading ``path`` through a read-only SQLite connection (nothing is
    created or migrated; a write would fail). Check :func:`study_file_problem` first."""
    import optuna

    return optuna.storages.RDBStorage(
        f"sqlite:///file:{Path(path).absolute()}?mode=ro&uri=true", skip_table_creation=True
    )
