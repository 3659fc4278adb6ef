"""The state database's two kinds: an SQLite file (the default, one box) or PostgreSQL (several rule engines that
share their state and take over each other's partitions: docs/scaling.md).

The engine's modules are written against :class:`sqlite3.Connection`'s small interface (``execute``,
``executemany``, ``executescript``, ``close``) with ``?`` placeholders. :class:`PgConnection` offers the same on
psycopg 3, so one statement serves both where SQLite and PostgreSQL agree (``INSERT ... ON CONFLICT``, ``CASE``,
``coalesce``); where they do not (column types, ``INSERT OR REPLACE``, ``json_extract``, two-argument ``max``), a
module asks :func:`dialect` and says both. Transactions are explicit on both (``BEGIN`` ... ``COMMIT`` on an
autocommit connection); ``BEGIN IMMEDIATE`` becomes ``BEGIN`` on PostgreSQL.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Optional, Union

__all__ = ["Connection", "PgConnection", "connect", "dialect", "errors", "is_postgres", "redact", "scrub"]

Dialect = Literal["sqlite", "postgresql"]
_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str) -> bool:
    """Whether a state setting names a PostgreSQL database (a ``postgresql://`` URL) rather than a file."""
    return target.strip().lower().startswith(_SCHEMES)


def redact(target: str) -> str:
    """The setting with any password replaced by ``***``, for logs and errors."""
    if not is_postgres(target):
        return target
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(target: str, text: str) -> str:
    """``text`` (an error's message) without the password of ``target``, a URL's."""
    if not is_postgres(target):
        return text
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(target).password
    except ValueError:
        return text
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text


def errors() -> tuple[type[Exception], ...]:
    """The exceptions a state database raises: sqlite3's, and psycopg's when it is installed (imported only
    when called: name it in an ``except`` clause, evaluated only when something was raised)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


#: libpq's connection settings unless the URL says otherwise: a database that stops answering (a machine gone, a
#: network cut without a reset) is given up within seconds, not the kernel's minutes, so an engine stops and its
#: partitions go to another (alerting/failover.py) instead of hanging on a statement
_NETWORK = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2",
            "keepalives_count": "3", "tcp_user_timeout": "10000",
            # a statement waits at most 5 s for a lock (a row, the ledger's advisory lock, a table under DDL), and a
            # session that leaves a transaction open 30 s is ended: a wait on another process (or on this process's
            # own transaction, open across a pause) can no longer freeze an engine; it fails and starts again
            "options": "-c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000"}


@functools.lru_cache(maxsize=1024)
def _to_pg(sql: str) -> str:
    """SQLite's statement text in psycopg's: ``?`` to ``%s`` (a literal ``%`` doubled); BEGIN IMMEDIATE to BEGIN."""
    if sql.lstrip().upper().startswith("BEGIN IMMEDIATE"):
        return "BEGIN"
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg 3 connection in autocommit mode, with sqlite3.Connection's ``execute`` interface.

    Statements use ``?`` placeholders (none may hold a literal ``?``); ``execute`` returns a cursor with
    ``fetchone``/``fetchall``/``rowcount`` as sqlite3's does.
    """

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, application_name: str = "vigil", connect_timeout: Optional[int] = None) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self.url = url
        given = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        ours = {**_NETWORK, "application_name": application_name}
        if connect_timeout is not None:
            ours["connect_timeout"] = str(connect_timeout)
        params = {**ours, **given}  # the URL's win
        self._conn = psycopg.connect(make_conninfo("", **params), autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(_to_pg(sql), tuple(params) if params else None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cur = self._conn.cursor()
        rows = [tuple(r) for r in rows]
        if rows:
            cur.executemany(_to_pg(sql), rows)
        return cur

    def executescript(self, script: str) -> None:
        """Several statements without parameters (schema)."""
        self._conn.execute(script)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    @property
    def closed(self) -> bool:
        """Closed, or lost (psycopg never reconnects: a new connection is needed)."""
        return bool(self._conn.closed)

    def close(self) -> None:
        self._conn.close()


Connection = Union[sqlite3.Connection, PgConnection]


def dialect(conn: Any) -> Dialect:
    """"postgresql" for a :class:`PgConnection`, else "sqlite"."""
    return "postgresql" if isinstance(conn, PgConnection) else "sqlite"


def connect(target: str, *, application_name: str = "vigil", timeout: Optional[float] = None,
            connect_timeout: Optional[int] = None) -> Connection:
    """A connection to the state database: a :class:`PgConnection` for a ``postgresql://`` URL (``connect_timeout``
    seconds instead of the default 10, unless the URL says), else sqlite3's (autocommit, ``check_same_thread=False``)
    for a file path."""
    if is_postgres(target):
        return PgConnection(target, application_name=application_name, connect_timeout=connect_timeout)
    return sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                           timeout=5.0 if timeout is None else timeout)
