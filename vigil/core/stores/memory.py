"""An in-memory store with the same semantics as the real ones, for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Optional

from vigil.core.event import Event, SeriesKey

from ._base import Aggregate, Point, Store, StoredField, StoreUnavailable, check_query, storable

__all__ = ["MemoryStore"]

# Plain Python, not numpy: the stores package is imported by every part, and numpy alone was 20 MB of RSS.
_AGG: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda vs: sum(vs) / len(vs), "min": min, "max": max, "sum": sum, "count": len,
}


class MemoryStore(Store):
    """Series in dicts keyed by microsecond timestamp. ``available = False`` simulates an outage."""

    name = "memory://"

    def __init__(self) -> None:
        self._series: dict[SeriesKey, dict[int, Event]] = {}
        self._lock = threading.Lock()
        self.available = True
        self.writes = 0

    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailable(self.name, "the in-memory store is marked unavailable")

    def write(self, events: Sequence[Event]) -> None:
        self._check()
        with storable(self.name, events) as good, self._lock:
            for e in good:
                self._series.setdefault(e.series, {})[e.ts_us] = e
            self.writes += 1

    def query(self, series: SeriesKey, start: float, end: float, bucket: Optional[float] = None,
              aggregate: Aggregate = "mean", field: StoredField = "value") -> list[Point]:
        check_query(start, end, bucket, aggregate, field)
        self._check()
        lo, hi = round(start * 1e6), round(end * 1e6)
        with self._lock:
            picked = ((ts, e.value if field == "value" else e.raw) for ts, e in self._series.get(series, {}).items())
            rows = sorted((ts, v) for ts, v in picked if lo <= ts < hi and v is not None)
        if bucket is None:
            return [Point(ts / 1e6, float(v)) for ts, v in rows]
        b = max(1, round(bucket * 1e6))
        groups: dict[int, list[float]] = {}
        for ts, v in rows:
            groups.setdefault((ts // b) * b, []).append(v)
        return [Point(k / 1e6, float(_AGG[aggregate](vs))) for k, vs in sorted(groups.items())]

    def latest(self, metric: Optional[str] = None, device: Optional[str] = None) -> list[Event]:
        self._check()
        with self._lock:
            out = [
                pts[max(pts)]
                for key, pts in self._series.items()
                if pts and (metric is None or key.metric == metric) and (device is None or key.device == device)
            ]
        return sorted(out, key=lambda e: (e.metric, e.device, e.sensor))

    def count(self, series: Optional[SeriesKey] = None) -> int:
        """How many points are stored (in one series, or in all)."""
        with self._lock:
            if series is not None:
                return len(self._series.get(series, {}))
            return sum(len(p) for p in self._series.values())
