"""Drift: two sensors in the same space that used to agree slowly part ("one of these needs calibration").

**What is kept.** Drift works over days, so raw readings are not kept (``window`` is 0: the series keeps
no samples for it). Each series the rule watches keeps, in its alert's scratch, its **hourly medians**
over ``over`` (:class:`Hours`: one float32 an hour, 672 bytes for 7 days, plus at most
:data:`PER_HOUR` readings of the current hour, one per :data:`SLOT` seconds). A median per hour makes a
door opened for a few minutes near one sensor invisible.

**The difference.** The siblings are the other series of the same rule with the same device or the same
value of a label (``siblings``, as ``stuck``: default ``[device, "label:room"]``). Per hour, the series'
median minus the reference: the sibling's median when there is one sibling, else the median of the
whole group (the series included, so one drifting sensor among three does not move the others'
reference much). A day/night cycle both sensors follow cancels out; a constant offset stays constant.
Of a pair, only the series whose id sorts first reports (one alert, naming both).

**The verdict**, recomputed once an hour (when the series' hour completes): with at least
:data:`MIN_HOURS` hourly differences spanning at least half of ``over``, the baseline is the median of
the oldest quarter, the current difference the median of the newest :data:`RECENT` hours, and a
Theil-Sen fit (forecast.py's, with the Mann-Kendall z of the same pairs) gives the trend (the rate told
is that of the newer half: the rate now). It fires when the difference moved from the baseline by more
than ``max``, away from zero (so a recalibration, which brings it back, is no new drift), and the trend
is significant in that direction (|z| >= :data:`Z_FIRE`); the baseline is then frozen, and the alert
holds until the difference is back within ``max`` / 2 of it (hysteresis; a recalibrated sensor).

**After a restart** :func:`alerting.driftrefill.refill_drift` (called by ``seed_windows``) refills the
hours from the store (one query per series with hourly buckets, the store's mean per hour) through
:meth:`Drift.refill`, and a firing alert's frozen baseline from the ``over`` before it began to fire
(:meth:`Drift.rebase`). Without a store, a firing alert holds until the window shows the difference
moving back toward zero by ``max`` / 2.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, NamedTuple, Optional

import numpy as np

from ._base import Condition, Ctx, SeriesData
from .forecast import median, theil_sen
from .stuck import sibling_keys

__all__ = ["Drift", "Hours"]

#: at most this many hourly points (evenly spaced) enter a fit, so its cost is bounded (~2,000 pairs)
MAX_POINTS = 64

HOUR = 3600.0
SLOT = 300.0  # at most one reading per slot enters the current hour's median
PER_HOUR = int(HOUR // SLOT)
MIN_HOURS = 24
RECENT = 6
Z_FIRE = 3.0
F32_MAX = 1e38


class Hours:
    """Hourly medians of one series' readings, oldest first; NaN: an hour without readings. Stored as
    float32 relative to the first reading ``ref`` (so a value near 1e6 keeps its decimals)."""

    __slots__ = ("buf", "first", "hour", "ref", "slot", "values")

    def __init__(self) -> None:
        self.ref = math.nan
        self.first = 0  # the hour (epoch hours) of values[0]
        self.values = array("f")
        self.hour: Optional[int] = None  # the hour being collected
        self.buf = array("f")
        self.slot = -1

    def add(self, ts: float, value: float, keep: int) -> bool:
        """One reading (source time); True when it completed an hour. Older readings are ignored."""
        slot, hour = int(ts // SLOT), int(ts // HOUR)
        if slot <= self.slot or not self._fits(value):
            return False
        self.slot = slot
        done = self.hour is not None and hour > self.hour
        if done:
            self._close(keep)
        if self.hour is None or done:
            self.hour = hour
        if len(self.buf) < PER_HOUR:
            self.buf.append(value - self.ref)
        return done

    def _fits(self, value: float) -> bool:
        """A finite value float32 can hold relative to ``ref`` (set by the first)."""
        if math.isnan(self.ref) and math.isfinite(value):
            self.ref = value
        return abs(value - self.ref) < F32_MAX

    def _close(self, keep: int) -> None:
        assert self.hour is not None
        self._put(self.hour, median(np.frombuffer(self.buf, dtype=np.float32).astype(float)), keep)
        del self.buf[:]

    def put(self, hour: int, value: float, keep: int) -> None:
        """Set one hour's median (at most ``keep`` hours are kept, the newest)."""
        if self._fits(value):
            self._put(hour, value - self.ref, keep)

    def _put(self, hour: int, value: float, keep: int) -> None:
        if not self.values:
            self.first = hour
        if hour < self.first:
            if self.first - hour + len(self.values) > keep:
                return
            self.values[0:0] = array("f", [math.nan] * (self.first - hour))
            self.first = hour
        end = self.first + len(self.values)
        if hour >= end:
            self.values.extend([math.nan] * (hour - end + 1))
        self.values[hour - self.first] = value
        if len(self.values) > keep:
            drop = len(self.values) - keep
            del self.values[:drop]
            self.first += drop

    def span(self, start: int, end: int) -> np.ndarray:
        """The medians of hours start..end-1 (NaN where none)."""
        out = np.full(end - start, np.nan)
        lo, hi = max(start, self.first), min(end, self.first + len(self.values))
        if hi > lo:
            out[lo - start:hi - start] = self.values[lo - self.first:hi - self.first]
        return out + self.ref


class Verdict(NamedTuple):
    base: float  # the difference in the oldest quarter (what it used to be)
    recent: float  # the difference in the newest hours
    rate: float  # units per day (Theil-Sen over the newer half)
    z: float  # Mann-Kendall z of the difference
    siblings: tuple[str, ...]  # the ids of the siblings compared with


class Drift(Condition):
    """Holds while the series and its siblings part: their hourly difference moved more than ``max`` from
    its baseline over ``over`` seconds with a significant trend (until back within ``max`` / 2)."""

    def __init__(self, limit: float, over: float, groups: list[str]) -> None:
        self.max, self.over, self.groups = limit, over, groups
        self.keep = max(MIN_HOURS, int(over // HOUR))
        # the series this rule watches: id -> its hours, and (group, value) -> ids (filled as they are seen)
        self._hours: dict[str, Hours] = {}
        self._members: dict[tuple[str, str], set[str]] = {}

    def _register(self, data: SeriesData, st: dict[str, Any]) -> Hours:
        hours = st.get("drift_hours")
        if not isinstance(hours, Hours):
            hours = st["drift_hours"] = Hours()
        if self._hours.get(data.id) is not hours:
            self._hours[data.id] = hours
            for key in sibling_keys(self.groups, data):
                self._members.setdefault(key, set()).add(data.id)
        return hours

    def siblings(self, data: SeriesData) -> list[str]:
        """The ids of the series compared with ``data`` (those of this rule seen or refilled so far)."""
        return self._siblings(data)

    def _siblings(self, data: SeriesData) -> list[str]:
        ids = {sid for key in sibling_keys(self.groups, data) for sid in self._members.get(key, ())} - {data.id}
        return sorted(ids)

    def refill(self, data: SeriesData, scratch: dict[str, Any], hourly: list[tuple[float, float]]) -> None:
        """Hours from the store (bucket starts, one value an hour) after a restart; hours heard live stay."""
        hours = self._register(data, scratch)
        for ts, value in hourly:
            hour = int(ts // HOUR)
            if (hours.hour is None or hour < hours.hour) and math.isnan(hours.span(hour, hour + 1)[0]):
                hours.put(hour, value, self.keep)
        scratch.pop("drift_key", None)

    def verdict(self, ctx: Ctx) -> Optional[Verdict]:
        """The verdict at the latest completed hour; None while there is too little history."""
        s, st = ctx.series, ctx.scratch
        hours = self._register(s, st)
        if s.ts is not None and s.value is not None:
            hours.add(s.ts, s.value, self.keep)  # once: a reading in a slot already counted is ignored
        sibs = tuple(self._siblings(s))
        key = (hours.hour, hours.first, len(hours.values), sibs)
        if st.get("drift_key") != key:
            st["drift_key"], st["drift"] = key, self._compute(hours, sibs)
        out: Optional[Verdict] = st["drift"]
        return out

    def rebase(self, scratch: dict[str, Any], at: float, own: list[tuple[float, float]],
               siblings: list[list[tuple[float, float]]]) -> None:
        """After a restart, a firing alert's frozen baseline from the store's hours (own and its siblings')
        before ``at``, when it began to fire: as it was then."""
        hours = []
        for points in (own, *siblings):
            h = Hours()
            for ts, value in points:
                h.put(int(ts // HOUR), value, self.keep)
            hours.append(h)
        found = self._diff(hours[0], hours[1:], int(at // HOUR))
        if found is not None:
            diff = found[1]
            scratch["drift_base"] = median(diff[:max(1, len(diff) // 4)])

    def _diff(self, hours: Hours, sibs: list[Hours], end: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(hours, difference to the siblings) of the hours before ``end``; None: too few."""
        start = end - self.keep
        own = hours.span(start, end)
        others = np.array([h.span(start, end) for h in sibs])
        ok = ~np.isnan(own) & (np.sum(~np.isnan(others), axis=0) > 0)
        if ok.sum() < MIN_HOURS:
            return None
        t = np.flatnonzero(ok).astype(float)
        if t[-1] - t[0] < self.keep / 2:
            return None
        ref = others[0, ok] if len(sibs) == 1 else np.nanmedian(np.vstack([own[ok], others[:, ok]]), axis=0)
        return t, own[ok] - ref

    def _compute(self, hours: Hours, sibs: tuple[str, ...]) -> Optional[Verdict]:
        if not sibs or hours.hour is None:
            return None
        found = self._diff(hours, [self._hours[sid] for sid in sibs], hours.hour)
        if found is None:
            return None
        t, diff = found
        q = max(1, len(diff) // 4)
        base, recent = median(diff[:q]), median(diff[-min(RECENT, q):])
        # at most 64 hours (evenly spaced) enter a fit: ~2,000 pairs
        pick = np.linspace(0, len(t) - 1, min(len(t), MAX_POINTS)).astype(int)
        t, diff = t[pick] / 24.0, diff[pick]
        fit = theil_sen(t, diff)  # the decision: the whole window's trend
        newer = theil_sen(t[len(t) // 2:], diff[len(t) // 2:])  # the rate told: the newer half's (the rate now)
        return Verdict(base, recent, newer.slope, fit.z, sibs)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        v = self.verdict(ctx)
        st = ctx.scratch
        if v is None:
            return None
        if len(v.siblings) == 1 and ctx.series.id > v.siblings[0]:
            return False  # a pair is one alert: the series whose id sorts first tells it
        if active:
            # frozen when it fired (after a restart: from the store, alerting/driftrefill.py)
            base = st.get("drift_base")
            if base is None:  # firing before a restart without a store: holds until a move back shows
                return not abs(v.recent) < abs(v.base) - self.max / 2
            return abs(v.recent - float(base)) > self.max / 2
        moved = v.recent - v.base
        # parting: away from zero (a recalibration brings them back toward it: no new alert)
        fires = abs(moved) > self.max and abs(v.recent) > abs(v.base) and v.z * moved > 0 \
            and abs(v.z) >= Z_FIRE
        if fires:
            st["drift_base"] = v.base
        else:
            st.pop("drift_base", None)
        return fires

    def value(self, ctx: Ctx) -> Optional[float]:
        """The current difference to the siblings."""
        v = self.verdict(ctx)
        return None if v is None else v.recent

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """``reason`` (the default message), ``baseline`` and ``difference`` (units), ``rate`` (units/day),
        ``siblings`` (device/sensor)."""
        v = self.verdict(ctx)
        if v is None:
            return {}
        frozen = ctx.scratch.get("drift_base")  # None: firing from before a restart without a store
        base = v.base if frozen is None else float(frozen)
        return {"reason": self._reason(ctx.series, v, base, frozen is not None), "baseline": base,
                "difference": v.recent,
                "rate": v.rate, "siblings": [_name(sid) for sid in v.siblings]}

    def _reason(self, s: SeriesData, v: Verdict, base: float, known: bool) -> str:
        unit = f" {s.unit}" if s.unit else ""
        where = f"{s.device}/{s.sensor}"
        names = [_name(sid) for sid in v.siblings]
        if len(names) == 1:
            pair, who = f"{where} and {names[0]}", "one of these needs calibration"
        else:
            pair, who = f"{where} and its siblings ({', '.join(names)})", f"{where} needs calibration"
        was = f"{max(abs(base), 0.05):.1f}{unit}"
        now = f"{abs(v.recent):.1f}{unit}"
        if not known:
            return f"{pair} agree again: they differ by {now}"
        if abs(v.recent - base) <= self.max / 2:
            return f"{pair} agree again: they differ by {now} ({was} before they parted)"
        return (f"{pair} used to agree within {was} and now differ by {now} "
                f"(parting at {abs(v.rate):.1f}{unit}/day): {who}")


def _name(sid: str) -> str:
    """device/sensor of a series id device/sensor/metric."""
    return sid.rsplit("/", 1)[0]
