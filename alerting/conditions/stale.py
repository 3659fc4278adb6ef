"""Stale: no reading of a series arrived for longer than its expected interval (set, or learned from it)."""

from __future__ import annotations

import math
import statistics
from array import array
from typing import Any, Optional

from ._base import Condition, Ctx

__all__ = ["Stale"]

#: how many of the latest intervals the learned interval is the median of
HISTORY = 16
KEY = "stale"


class Stale(Condition):
    """Active when nothing arrived for ``after`` seconds, or ``factor`` x the usual interval (at least ``minimum``).

    Unlike :class:`~alerting.conditions.nodata.NoData` (silence on source time, declared series, a fixed
    time), silence is measured from when the latest reading ARRIVED (the engine's clock), whatever its value
    or the device's status, and the interval can be learned: the median of the last :data:`HISTORY`
    intervals between readings, judged once ``warmup`` of them were seen. Intervals are learned on source
    time, so a backlog delivered at once after a network outage does not teach it "every 0 s". After the
    engine could not hear its input (``ctx.resumed``), an alert not already active counts from then.
    """

    def __init__(self, after: Optional[float], factor: Optional[float], minimum: float, warmup: int) -> None:
        self.after, self.factor = after, factor
        self.minimum, self.warmup = minimum, warmup

    def _learn(self, ctx: Ctx) -> Optional[float]:
        """One interval more for each new reading; the learned interval (None: still learning).

        Kept per series (the same for every stale rule) in ``SeriesData.memo`` as 11 doubles: the latest
        reading's time, how many intervals were seen, their median, and the last :data:`HISTORY` intervals
        as float32, two to a double."""
        s = ctx.series
        st, _ = s.state(KEY, lambda: array("d", [math.nan, 0.0, 0.0] + [0.0] * (HISTORY // 2)))
        ts, seen = s.ts, int(st[1])
        if ts is not None and ts != st[0]:
            prev, st[0] = st[0], ts
            if ts > prev:  # (False for NaN: the first reading)
                gaps = st[3:].cast("B").cast("f")
                gaps[seen % HISTORY] = ts - prev
                seen = st[1] = seen + 1
                st[2] = statistics.median(gaps[:min(seen, HISTORY)].tolist())
        return None if seen < self.warmup else st[2]

    def limit(self, ctx: Ctx) -> Optional[float]:
        """Seconds of silence that make the series stale (None: still learning its interval)."""
        interval = self._learn(ctx)
        if self.after is not None:
            return self.after
        return None if interval is None or self.factor is None else max(self.minimum, self.factor * interval)

    @staticmethod
    def _since(ctx: Ctx, active: bool) -> Optional[float]:
        s = ctx.series
        # after a restart nothing arrived yet: when the series was last heard (kept in the state file)
        since = s.received if s.received is not None else s.last_seen
        if since is not None and ctx.resumed is not None and not active:
            since = max(since, ctx.resumed)
        return since

    def value(self, ctx: Ctx) -> Optional[float]:
        since = self._since(ctx, True)
        return None if since is None else max(0.0, ctx.at - since)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        since, limit = self._since(ctx, active), self.limit(ctx)
        if since is None:
            return None
        if limit is None:
            # learning: a reading arrived since the start, so it is not silent; else it cannot say
            return False if ctx.series.received is not None else None
        # as next_change's due time, so the timer at exactly since + limit finds it stale (not a hair short)
        return ctx.at >= since + limit

    def next_change(self, ctx: Ctx) -> Optional[float]:
        since, limit = self._since(ctx, False), self.limit(ctx)
        if since is None or limit is None:
            return None
        due = since + limit
        return due if due > ctx.at else None

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        return {"interval": self._learn(ctx), "limit": self.limit(ctx)}

    state_version = 2
    memo_key, memo_cells = KEY, 3 + HISTORY // 2
