"""The notification outbox: transitions the engine commits together with its own state change."""

from __future__ import annotations

import sqlite3

from alerting.transition import Transition

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


class Outbox:
    """Enqueue transitions on the engine's connection; the Dispatcher reads them from the same file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create_tables(self) -> None:
        """Create the outbox table if it is missing (safe to call on every start)."""
        self._conn.execute(_SCHEMA)

    def enqueue(self, t: Transition) -> None:
        """Insert ``t`` without committing: the caller commits it with its own state change.

        A transition already enqueued (same ``t.id``) is ignored, so a replay after a crash adds nothing.
        """
        self._conn.execute(
            f"INSERT OR IGNORE INTO {OUTBOX_TABLE} (id, key, body, enqueued) VALUES (?, ?, ?, ?)",
            (t.id, t.key, t.to_json(), t.at),
        )
