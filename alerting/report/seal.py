"""Seals: the digest of one series' stored readings over one site day, kept in the ledger.

Canonical form of the readings of ``[start, end)``, oldest first: each reading is 24 bytes, its time in
whole microseconds since 1970 (signed 64-bit, big-endian), its value and its raw value (the value
before calibration; NaN 0x7ff8000000000000 when the reading was not corrected), each an IEEE 754
double, big-endian (``-0.0`` written as ``0.0``). The seal is the count and the SHA-256 of those bytes.
The same stored readings give the same digest from SQLite and InfluxDB.
"""

from __future__ import annotations

import gc
import hashlib
import math
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from alerting import ledger
from alerting.state import immediate_transaction
from vigil.core import sqldb
from vigil.core.event import SeriesKey
from vigil.core.stores import Store

from .ledgerdb import open_ledger_writable, state_errors

__all__ = ["Readings", "SealWanted", "digest", "load_readings", "record", "series_key"]

_DTYPE = np.dtype([("ts", ">i8"), ("value", ">f8"), ("raw", ">f8")])


def series_key(series: str) -> SeriesKey:
    device, sensor, metric = series.split("/")
    return SeriesKey(metric, device, sensor)


@dataclass
class Readings:
    """One series' stored readings: times (µs), values, raw values (NaN: not corrected)."""

    ts: np.ndarray[Any, np.dtype[np.int64]]
    value: np.ndarray[Any, np.dtype[np.float64]]
    raw: np.ndarray[Any, np.dtype[np.float64]]

    def between(self, start: float, end: float) -> Readings:
        i0, i1 = np.searchsorted(self.ts, [round(start * 1e6), round(end * 1e6)])
        return Readings(self.ts[i0:i1], self.value[i0:i1], self.raw[i0:i1])

    def __len__(self) -> int:
        return int(self.ts.size)


_gc_lock = threading.Lock()
_gc_paused = [0, False]  # loads in progress, whether the collector was on before the first


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector paused while a store hands over a month of points (hundreds of thousands of
    acyclic objects: each generation-0 pass would walk them again for nothing, a quarter of the time)."""
    with _gc_lock:
        if _gc_paused[0] == 0:
            _gc_paused[1] = gc.isenabled()
            gc.disable()
        _gc_paused[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_paused[0] -= 1
            if _gc_paused[0] == 0 and _gc_paused[1]:
                gc.enable()


CHUNK = 86400.0


def load_readings(store: Store, series: str, start: float, end: float,
                  pool: Optional[Executor] = None) -> Readings:
    """The stored values and raw values of ``series`` in ``[start, end)``, merged by time. With ``pool``,
    a day at a time on its threads: the store answers one day while Python decodes another (a month in
    one query took half as long again on InfluxDB, bench/report.py)."""
    key = series_key(series)
    with _no_gc():
        if pool is None or end - start <= CHUNK:
            return _load(store, key, start, end)
        n = math.ceil((end - start) / CHUNK)
        edges = [start + k * CHUNK for k in range(n)] + [end]
        parts = list(pool.map(lambda k: _load(store, key, edges[k], edges[k + 1]), range(n)))
        return Readings(np.concatenate([p.ts for p in parts]), np.concatenate([p.value for p in parts]),
                        np.concatenate([p.raw for p in parts]))


def _load(store: Store, key: SeriesKey, start: float, end: float) -> Readings:
    points = store.query(key, start, end)
    ts = np.rint(np.fromiter((p.ts for p in points), np.float64, len(points)) * 1e6).astype(np.int64)
    value = np.fromiter((p.value for p in points), np.float64, len(points))
    del points
    raw = np.full(ts.size, np.nan)
    raws = store.query(key, start, end, field="raw") if ts.size else []
    if raws:
        rts = np.rint(np.fromiter((p.ts for p in raws), np.float64, len(raws)) * 1e6).astype(np.int64)
        rv = np.fromiter((p.value for p in raws), np.float64, len(raws))
        idx = np.searchsorted(ts, rts)
        ok = (idx < ts.size) & (ts[np.minimum(idx, max(ts.size - 1, 0))] == rts) if ts.size else idx < 0
        raw[idx[ok]] = rv[ok]
    return Readings(ts, value, raw)


def digest(r: Readings) -> str:
    """SHA-256 of the readings in canonical form (the module's docstring)."""
    packed = np.empty(len(r), dtype=_DTYPE)
    packed["ts"] = r.ts
    packed["value"] = r.value + 0.0  # -0.0 -> 0.0
    raw = r.raw + 0.0
    raw[np.isnan(raw)] = np.nan  # one NaN bit pattern
    packed["raw"] = raw
    return hashlib.sha256(packed.tobytes()).hexdigest()


def _count(body: dict[str, Any]) -> str:
    n = body.get("count")
    return f"{n:,}" if type(n) is int else repr(n)


@dataclass(frozen=True)
class SealWanted:
    series: str
    start: float
    end: float
    count: int
    sha256: str
    day: str = ""  # YYYY-MM-DD in the site zone, for sentences


def record(state_path: str | Path, wanted: list[SealWanted], report: dict[str, Any], at: float
           ) -> tuple[list[int], list[str], ledger.Entry]:
    """Append the seals not in the ledger yet and the ``report`` row, in one write transaction.

    Returns the seal rows' numbers (in ``wanted``'s order, an existing seal's where there was one),
    warnings (a unit-day whose readings differ from its earlier seal) and the report row. ``state_path`` is the
    engine's SQLite file or a ``postgresql://`` URL; StateUnavailable when it cannot be written.
    """
    with state_errors(state_path):
        conn = open_ledger_writable(state_path)
        try:
            with immediate_transaction(conn):  # on PostgreSQL, ledger.create takes the ledger's lock in it
                return _record(conn, wanted, report, at)
        finally:
            conn.close()


def _record(conn: sqldb.Connection, wanted: list[SealWanted], report: dict[str, Any], at: float
            ) -> tuple[list[int], list[str], ledger.Entry]:
    # on PostgreSQL, ledger.create takes the ledger's lock, held to the commit: two reports do not both seal a day
    ledger.create(conn)
    existing: dict[tuple[str, float, float], ledger.Entry] = {}
    units = sorted({w.series for w in wanted})
    for e in ledger.entries(conn, keys=units, kinds=["seal"]):
        existing.setdefault((e.key, float(e.body.get("start", 0)), float(e.body.get("end", 0))), e)
    seqs: list[int] = []
    warnings: list[str] = []
    for w in wanted:
        old = existing.get((w.series, w.start, w.end))
        if old is None:
            body = {"series": w.series, "start": w.start, "end": w.end, "count": w.count, "sha256": w.sha256}
            old = ledger.append(conn, "seal", w.series, body, at)
        elif old.body.get("sha256") != w.sha256 or old.body.get("count") != w.count:
            warnings.append(f"{w.series} {w.day}: {w.count:,} readings now, {_count(old.body)} when "
                            f"sealed (ledger record {old.seq}); the stored readings changed since")
        seqs.append(old.seq)
    body = dict(report)
    body["seals"] = seqs
    return seqs, warnings, ledger.append(conn, "report", str(report["id"]), body, at)
