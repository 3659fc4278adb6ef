"""What the dashboard refuses until it expires: ended sessions, signed requests already received.

Kept in memory for the check and written through to a small SQLite file in the data directory,
so that a restart forgets neither a logout nor a signature: a cookie that was logged out, or a
captured signed request, stays refused until its own expiry. Bounded per kind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Optional

from vigil.core.clock import Clock
from vigil.core.errors import VigilError

__all__ = ["DenyList", "DenyListFull"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS denied (
    kind TEXT NOT NULL, key TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


class DenyListFull(VigilError):
    """More keys of one kind than the limit are unexpired; ``retry_after`` is when the oldest expires."""

    def __init__(self, kind: str, retry_after: float) -> None:
        self.kind = kind
        self.retry_after = retry_after
        super().__init__(f"too many {kind} entries within their expiry")


class DenyList:
    """Keys by kind, each refused until a time; ``path=None`` keeps them in memory only."""

    def __init__(self, path: Optional[Path], clock: Clock, limit: int = 200_000) -> None:
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._mem: dict[str, dict[str, float]] = {}
        self._db: Optional[sqlite3.Connection] = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL with synchronous=NORMAL: a process crash loses nothing, a power cut the last commits.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            now = clock.now()
            self._db.execute("DELETE FROM denied WHERE until <= ?", (now,))
            for kind, key, until in self._db.execute("SELECT kind, key, until FROM denied"):
                self._mem.setdefault(kind, {})[key] = until
        self._write_failed = False

    def denied(self, kind: str, key: str) -> bool:
        """Whether ``key`` is refused now."""
        until = self._mem.get(kind, {}).get(key)
        return until is not None and until > self._clock.now()

    def add(self, kind: str, key: str, until: float) -> bool:
        """Refuse ``key`` until ``until``; False when it was refused already. DenyListFull at the limit."""
        with self._lock:
            now = self._clock.now()
            keys = self._mem.setdefault(kind, {})
            old = keys.get(key)
            if old is not None and old > now:
                return False
            if len(keys) >= self._limit:
                self._prune(kind, now)
                if len(keys) >= self._limit:
                    raise DenyListFull(kind, max(0.1, min(keys.values()) - now))
            keys[key] = until
            self._write("INSERT OR REPLACE INTO denied VALUES (?, ?, ?)", (kind, key, until))
            return True

    def __len__(self) -> int:
        return sum(len(k) for k in self._mem.values())

    def _prune(self, kind: str, now: float) -> None:
        keys = self._mem[kind]
        for k in [k for k, until in keys.items() if until <= now]:
            del keys[k]
        self._write("DELETE FROM denied WHERE kind = ? AND until <= ?", (kind, now))

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            # Still refused in memory; only a restart would forget it. Said once, not per request.
            if not self._write_failed:
                log.error("cannot write the dashboard's deny list (%s): a restart would forget logouts and "
                          "replayed signatures until it is writable again", exc)
            self._write_failed = True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
