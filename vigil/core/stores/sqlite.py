"""The embedded store: one SQLite file, for small installations and demos.

Raw readings are kept for a configurable window (30 days by default); :meth:`prune` deletes
older ones in small chunks, each its own short transaction, so ingest never waits long.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from vigil.core.event import Event, SeriesKey

from ._base import Aggregate, Point, Store, StoredField, StoreUnavailable, check_query, storable

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    metric TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL,
    ts INTEGER NOT NULL, value REAL NOT NULL, raw REAL,
    PRIMARY KEY (metric, device, sensor, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts);
CREATE TABLE IF NOT EXISTS latest (
    metric TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL,
    ts INTEGER NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, labels TEXT NOT NULL,
    PRIMARY KEY (metric, device, sensor)
) WITHOUT ROWID;
"""

_SQL_AGG = {"mean": "avg(value)", "min": "min(value)", "max": "max(value)", "sum": "sum(value)",
            "count": "count(value)"}


class SqliteStore(Store):
    """Idempotent writes (same series and timestamp overwrite), WAL, fsync per batch."""

    def __init__(self, path: str | Path, retention: float = 30 * 86400.0, prune_chunk: int = 5000) -> None:
        self.path = Path(path)
        self.name = f"sqlite:///{path}"
        self.retention = retention
        self._chunk = prune_chunk
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = self._connect()
            self._w.executescript(_SCHEMA)
            self._migrate()
            self._r = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(self.name, f"cannot open the database file: {exc}") from exc
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _migrate(self) -> None:
        """Files made before calibration (issue 16) get the nullable ``raw`` column."""
        columns = {row[1] for row in self._w.execute("PRAGMA table_info(readings)")}
        if "raw" not in columns:
            self._w.execute("ALTER TABLE readings ADD COLUMN raw REAL")
            log.info("%s: added the column raw (the value before calibration) to readings", self.path)

    def write(self, events: Sequence[Event]) -> None:
        with storable(self.name, events) as good:
            if good:
                self._write_batch(good)

    def _write_batch(self, events: Sequence[Event]) -> None:
        rows = [(e.metric, e.device, e.sensor, e.ts_us, float(e.value), None if e.raw is None else float(e.raw))
                for e in events]
        newest: dict[SeriesKey, Event] = {}
        for e in events:
            cur = newest.get(e.series)
            if cur is None or e.ts >= cur.ts:
                newest[e.series] = e
        latest = [(e.metric, e.device, e.sensor, e.ts_us, float(e.value), e.unit, json.dumps(dict(e.labels)))
                  for e in newest.values()]
        with self._wlock:
            try:
                self._w.execute("BEGIN IMMEDIATE")
                self._w.executemany("INSERT OR REPLACE INTO readings (metric, device, sensor, ts, value, raw) "
                                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._w.executemany(
                    "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (metric, device, sensor) DO UPDATE SET ts=excluded.ts, value=excluded.value, "
                    "unit=excluded.unit, labels=excluded.labels WHERE excluded.ts >= latest.ts",
                    latest,
                )
                self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    self._w.execute("ROLLBACK")
                raise StoreUnavailable(self.name, f"write failed: {exc}") from exc

    def query(self, series: SeriesKey, start: float, end: float, bucket: Optional[float] = None,
              aggregate: Aggregate = "mean", field: StoredField = "value") -> list[Point]:
        check_query(start, end, bucket, aggregate, field)
        args: list[object] = [series.metric, series.device, series.sensor, round(start * 1e6), round(end * 1e6)]
        where = "metric = ? AND device = ? AND sensor = ? AND ts >= ? AND ts < ?"
        if field == "raw":
            where += " AND raw IS NOT NULL"
        if bucket is None:
            sql = f"SELECT ts, {field} FROM readings WHERE {where} ORDER BY ts"
        else:
            b = max(1, round(bucket * 1e6))
            agg = _SQL_AGG[aggregate].replace("value", field)
            sql = (f"SELECT (ts / {b}) * {b} AS bts, {agg} FROM readings WHERE {where} "
                   "GROUP BY bts ORDER BY bts")
        with self._rlock:
            try:
                rows = self._r.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(self.name, f"query failed: {exc}") from exc
        return [Point(ts / 1e6, float(v)) for ts, v in rows]

    def latest(self, metric: Optional[str] = None, device: Optional[str] = None) -> list[Event]:
        sql = "SELECT metric, device, sensor, ts, value, unit, labels FROM latest"
        conds, args = [], []
        if metric is not None:
            conds.append("metric = ?")
            args.append(metric)
        if device is not None:
            conds.append("device = ?")
            args.append(device)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        with self._rlock:
            rows = self._r.execute(sql + " ORDER BY metric, device, sensor", args).fetchall()
        return [
            Event(device=d, sensor=s, metric=m, value=v, ts=ts / 1e6, unit=u,
                  labels=tuple(sorted(json.loads(lab).items())), source="store")
            for m, d, s, ts, v, u, lab in rows
        ]

    def prune(self, now: Optional[float] = None) -> int:
        """Delete raw readings older than the retention window; returns how many."""
        cutoff = round(((now if now is not None else time.time()) - self.retention) * 1e6)
        total = 0
        while True:
            with self._wlock:
                cur = self._w.execute(
                    "DELETE FROM readings WHERE (metric, device, sensor, ts) IN (SELECT metric, device, sensor, ts "
                    "FROM readings WHERE ts < ? LIMIT ?)",
                    (cutoff, self._chunk),
                )
                n = cur.rowcount
            total += n
            if n < self._chunk:
                break
        if total:
            log.info("pruned %d readings older than %s days", total, round(self.retention / 86400, 1))
        return total

    def ping(self) -> None:
        with self._rlock:
            self._r.execute("SELECT 1")

    def close(self) -> None:
        with self._wlock:
            self._w.close()
        with self._rlock:
            self._r.close()
