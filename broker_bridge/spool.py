"""The bridge's disk spool: where events wait, in order, while the store is down.

A SQLite file (WAL) of batches. It is bounded by a count of events; past the bound the
oldest batches are dropped, counted and logged, so a long outage costs the oldest readings
rather than the process's memory or the disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from vigil.core.event import Event

__all__ = ["Spool"]

log = logging.getLogger(__name__)


class Spool:
    """A bounded FIFO of event batches on disk; thread-safe."""

    def __init__(self, path: str | Path, max_events: int = 1_000_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, "
            "events BLOB NOT NULL)"
        )
        self._lock = threading.Lock()
        row = self._conn.execute("SELECT count(*), coalesce(sum(n), 0) FROM batches").fetchone()
        self._batches, self._events = int(row[0]), int(row[1])
        self.dropped = 0

    @property
    def events(self) -> int:
        """How many events wait."""
        return self._events

    def __len__(self) -> int:
        return self._batches

    def put(self, events: Sequence[Event]) -> int:
        """Append a batch durably; returns how many old events were dropped to stay in bound."""
        if not events:
            return 0
        blob = "\n".join(e.to_json().decode() for e in events).encode()
        dropped = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT INTO batches (n, events) VALUES (?, ?)", (len(events), blob))
            self._batches += 1
            self._events += len(events)
            while self._events > self.max_events and self._batches > 1:
                oldest = self._conn.execute("SELECT id, n FROM batches ORDER BY id LIMIT 1").fetchone()
                self._conn.execute("DELETE FROM batches WHERE id = ?", (oldest[0],))
                self._batches -= 1
                self._events -= oldest[1]
                dropped += oldest[1]
            self._conn.execute("COMMIT")
            self.dropped += dropped
        if dropped:
            log.warning("spool full (%d events): dropped the %d oldest; %d dropped since start",
                        self.max_events, dropped, self.dropped)
        return dropped

    def peek(self) -> Optional[tuple[int, list[Event]]]:
        """The oldest batch and its id, or None when empty."""
        with self._lock:
            row = self._conn.execute("SELECT id, events FROM batches ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return int(row[0]), [Event.from_json(line) for line in bytes(row[1]).split(b"\n") if line]

    def remove(self, batch_id: int) -> None:
        """Forget a batch once it is stored."""
        with self._lock:
            row = self._conn.execute("SELECT n FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return
            self._conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            self._batches -= 1
            self._events -= int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
