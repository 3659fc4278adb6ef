"""The alert changes the dashboard has seen, kept in a small SQLite file so history survives restarts."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Optional

__all__ = ["AlertJournal"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_history (
    key TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL,
    rule TEXT NOT NULL, series TEXT NOT NULL, severity TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (key, state, at)
);
CREATE INDEX IF NOT EXISTS alert_history_at ON alert_history (at);
CREATE TABLE IF NOT EXISTS alert_acks (
    key TEXT NOT NULL, since REAL NOT NULL, by TEXT NOT NULL, at REAL NOT NULL, comment TEXT NOT NULL,
    PRIMARY KEY (key, since)
);
"""


class AlertJournal:
    """Alert changes by (alert, state, time): a retained state seen again after a restart is not new."""

    def __init__(self, path: str | Path, keep_days: float = 90.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._keep = keep_days * 86400
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._adds = 0
        self.prune()

    def add(self, alert: dict[str, Any]) -> bool:
        """Record one alert change; False when it was already recorded."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO alert_history VALUES (?, ?, ?, ?, ?, ?, ?)",
                (alert["key"], alert["state"], alert["at"], alert["rule"], alert["series"], alert["severity"],
                 json.dumps(alert, ensure_ascii=False)))
            new = cur.rowcount == 1
        self._adds += 1
        if self._adds % 500 == 0:
            self.prune()
        return new

    def query(self, state: Optional[str] = None, rule: Optional[str] = None, series: Optional[str] = None,
              severity: Optional[str] = None, limit: int = 200) -> list[dict[str, Any]]:
        """The newest changes first, filtered (``series`` matches a part of the series id)."""
        sql, args = "SELECT body FROM alert_history WHERE 1=1", []
        for column, value in (("state", state), ("rule", rule), ("severity", severity)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if series is not None:
            sql += " AND instr(series, ?) > 0"
            args.append(series)
        sql += " ORDER BY at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [json.loads(r[0]) for r in rows]

    def add_ack(self, key: str, since: float, by: str, at: float, comment: str) -> None:
        """Remember when an alert's firing (from ``since``) was acknowledged: the engine publishes who, not when."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO alert_acks VALUES (?, ?, ?, ?, ?)", (key, since, by, at, comment))

    def ack_of(self, key: str, since: float) -> Optional[dict[str, Any]]:
        """The acknowledgement recorded for this firing, or None."""
        with self._lock:
            row = self._db.execute("SELECT by, at, comment FROM alert_acks WHERE key = ? AND since = ?",
                                   (key, since)).fetchone()
        return None if row is None else {"by": row[0], "at": row[1], "comment": row[2]}

    def prune(self, now: Optional[float] = None) -> None:
        cutoff = (now if now is not None else time.time()) - self._keep
        with self._lock:
            self._db.execute("DELETE FROM alert_history WHERE at < ?", (cutoff,))
            self._db.execute("DELETE FROM alert_acks WHERE at < ?", (cutoff,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
