"""The alert state the reports read and seal in: the engine's SQLite file, or its PostgreSQL database (a
``postgresql://`` URL, several engines sharing it: docs/scaling.md). Opened here for reading (the engine may be
writing it) or for one write transaction; a failure of either kind is :class:`StateUnavailable`, in words that
name the file, or the database without its password."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from vigil.core import sqldb

from .model import StateUnavailable

__all__ = ["has_ledger", "open_ledger_readonly", "open_ledger_writable", "shown", "state_errors"]


def shown(target: str | Path) -> str:
    """The state as said in a message: the file's path, or the URL with its password redacted."""
    return sqldb.redact(str(target))


def _what(target: str) -> str:
    return f"the alert state database {sqldb.redact(target)}" if sqldb.is_postgres(target) else \
        f"the alert state file {target}"


@contextmanager
def state_errors(target: str | Path) -> Iterator[None]:
    """A database error (sqlite3's, psycopg's) inside as :class:`StateUnavailable`, naming ``target``."""
    text = str(target)
    try:
        yield
    except sqldb.errors() as exc:
        raise StateUnavailable(shown(text), f"cannot use {_what(text)}: {sqldb.scrub(text, str(exc).strip())}"
                               ) from None


def _connect_pg(target: str, application_name: str) -> sqldb.Connection:
    try:
        import psycopg  # noqa: F401  (the server extra)
    except ImportError:
        raise StateUnavailable(shown(target), f"cannot use {_what(target)}: a PostgreSQL state database needs "
                                              "psycopg (the server extra)") from None
    with state_errors(target):
        return sqldb.connect(target, application_name=application_name)


def open_ledger_readonly(target: str | Path) -> Optional[sqldb.Connection]:
    """The state opened read-only (the engine may be writing it); None when there is no such file.

    A PostgreSQL database is connected to with read-only transactions; StateUnavailable when it cannot be.
    """
    text = str(target)
    if sqldb.is_postgres(text):
        conn = _connect_pg(text, "vigil-report")
        try:
            with state_errors(text):
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except StateUnavailable:
            conn.close()
            raise
        return conn
    p = Path(target)
    if not p.exists():
        return None
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_ledger_writable(target: str | Path) -> sqldb.Connection:
    """The state opened for writes (autocommit: the caller begins its transaction); an SQLite file is made if
    there is none, in WAL mode as the engine keeps it."""
    text = str(target)
    if sqldb.is_postgres(text):
        return _connect_pg(text, "vigil-report")
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(text, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # as the engine: checkpoints are its business
    except BaseException:
        conn.close()
        raise
    return conn


def has_ledger(conn: sqldb.Connection) -> bool:
    """Whether the state has a ledger table (an SQLite file the engine never opened has none)."""
    if sqldb.dialect(conn) == "postgresql":
        return conn.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0] is True
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger'").fetchone() is not None
