"""The notification outbox: transitions the engine commits together with its own state change.

The table lives in the state database, an SQLite file or PostgreSQL (vigil.core.sqldb). On PostgreSQL ``seq``
is an identity column, and an enqueueing transaction holds the ledger's advisory lock (alerting.ledger.lock)
from taking its ``seq`` until it commits, so rows become visible in ``seq`` order there too, as the dispatcher
reads them (``seq > after``).
"""

from __future__ import annotations

from contextlib import nullcontext

from alerting import ledger
from alerting.state import immediate_transaction
from alerting.transition import Transition
from vigil.core.sqldb import Connection, dialect

__all__ = ["OUTBOX_TABLE", "Outbox"]

OUTBOX_TABLE = "notify_outbox"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
)
"""
_PG_SCHEMA = (_SCHEMA.replace("seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGINT GENERATED ALWAYS AS IDENTITY "
                              "PRIMARY KEY").replace(" REAL", " DOUBLE PRECISION"))


class Outbox:
    """Enqueue transitions on the engine's connection; the Dispatcher reads them from the same database."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create_tables(self) -> None:
        """Create the outbox table if it is missing (safe to call on every start)."""
        if dialect(self._conn) == "sqlite":
            self._conn.execute(_SCHEMA)
            return
        # two processes creating one table at once can fail on PostgreSQL: under the lock, in a transaction
        with nullcontext() if self._conn.in_transaction else immediate_transaction(self._conn):
            ledger.lock(self._conn)
            self._conn.execute(_PG_SCHEMA)

    def enqueue(self, t: Transition) -> None:
        """Insert ``t`` without committing: the caller commits it with its own state change.

        A transition already enqueued (same ``t.id``) is ignored, so a replay after a crash adds nothing.
        """
        ledger.lock(self._conn)
        self._conn.execute(
            f"INSERT INTO {OUTBOX_TABLE} (id, key, body, enqueued) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (t.id, t.key, t.to_json(), t.at),
        )
