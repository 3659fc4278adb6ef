"""Forecast: "will cross THRESHOLD within DURATION", from a robust trend over a window.

**What it keeps.** Not the window's readings: the window is cut into :data:`SLOTS` slots (``window`` /
32 each: 56 s for a 30-minute window) and each slot keeps the mean of its readings, their mean time in
the slot and how many there were, as float32 cells in ``SeriesData.memo`` (74 of them, 296 bytes per
series and rule; a 30-minute window of 10-second readings kept as tuples took 20 KB).
The trend is fitted once per slot, when a slot closes, on the closed slots; between fits the verdict is
reused (the crossing time counts down with the clock) and only "is the latest value already past the
threshold" is judged on each reading. After a restart the slots are refilled from the store's history
(``SeriesData.seeded``, :attr:`history`): slots with no reading of their own take the stored readings.

The trend is a **Theil-Sen** fit (the median of the slopes between every pair of slots; the level is the
median of the residuals). Why Theil-Sen rather than least squares or a Huber fit: a door opened for a few
minutes (a block of high readings) or a few spikes barely move a median of slopes (breakdown point ~29 %),
where least squares follows them; it needs no scale or tuning constant and no iterations, and the signs of
the same pairwise differences give the **Mann-Kendall** statistic for free: whether there is a trend.

It fires only when all of these hold, so that noise, a door opened and closed, or a defrost cycle that
peaks below the threshold do not raise it:

- at least ``min_samples`` readings in the window, spanning at least half of it;
- the trend is significant: Mann-Kendall |z| >= :data:`Z_FIRE` (a flat noisy series: |z| ~ N(0, 1));
- the fit is good: the trend's change over the window is at least :data:`TREND_OVER_NOISE` times the
  spread of the slots around the line (robust: 1.4826 x the residuals' MAD);
- the newest quarter of the window already moved toward the threshold (its median beyond that of the
  quarter before it);
- the crossing is projected from the fitted line (not the latest reading: a spike moves neither), at the
  slowest of three rates, over the whole window, its newer half and its newest quarter: a rise that just
  began is damped by the flat readings before it;
- **no significant deceleration says it peaks first**: the rates of the newest :data:`SEGMENT` of the window
  and of the one before it (Theil-Sen each) give a deceleration; when the rate falls by more than
  :data:`DECEL_Z` times what the noise explains, the rise is projected on the parabola (the rate at the
  newest slot, falling at that deceleration), and a rise that levels off below the threshold (a defrost
  heater run, warming fast, then slower toward its peak) projects no crossing. A steady rise (a compressor
  that stopped) has no deceleration and is projected on its line.

It does **not** fire when the latest value is already past the threshold: that is a threshold rule's job.
An alert already firing stays firing when the value gets there (the forecast came true), and resolves when
the trend turns: the projected crossing moves beyond ``within`` x :data:`CLEAR_FACTOR`, or the trend is no
longer significant (|z| < :data:`Z_HOLD`), and the value is back on the right side. The value (and the
message) is the seconds until the expected crossing at the rate of the window's newer half (the rate now;
the decision used the slowest), counted from the newest reading.
"""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from typing import Any, NamedTuple, Optional

import numpy as np

from ._base import Condition, Ctx

__all__ = ["Forecast", "median", "theil_sen"]

SLOTS = 32
RECENT = (1 / 3, 2 / 3)  # of the window: its newest parts, where a parabola shows a deceleration
Z_FIRE = 3.0
Z_HOLD = 2.0
CLEAR_FACTOR = 1.5
TREND_OVER_NOISE = 3.0
FAR = 5.0  # a crossing (on the whole window's line) more than FAR x within away is not looked at further
DECEL_Z = 1.0
DECEL_GATE = 1.0
_WRAP = 2 ** 24  # slot numbers are kept modulo this (exact in float32)
# the array: SLOTS means (the open slot's: its running mean), SLOTS "readings + their mean time in the slot
# (0..1)", the open slot's number, the newest reading's time in it (seconds), the slot the verdict was
# fitted at, then the verdict (relative to the start of that slot): eta, eta_fire, eta_shown, rate, z,
# toward, enough
_OPEN, _AT, _FITTED, _VERDICT = 2 * SLOTS, 2 * SLOTS + 1, 2 * SLOTS + 2, 2 * SLOTS + 3
_FIELDS = 7
_SIZE = _VERDICT + _FIELDS


def _f32(x: float) -> float:
    return array("f", [x])[0]


class Fit(NamedTuple):
    slope: float  # units per second
    level: float  # the fitted line at t = 0
    z: float  # Mann-Kendall z (sign: the trend's direction)
    spread: float  # robust standard deviation of the residuals (1.4826 x their MAD)


@lru_cache(maxsize=SLOTS + 1)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, 1)
    return i, j


def median(x: np.ndarray) -> float:
    """np.median without its wrapper's cost (a few times faster on the small arrays of a fit)."""
    n = len(x)
    k = n // 2
    if n % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, (k - 1, k))
    return float(part[k - 1] + part[k]) / 2


def theil_sen(t: np.ndarray, y: np.ndarray) -> Fit:
    """The Theil-Sen line through (t, y) (t ascending, at least 3 points), its level at t = 0, and the
    Mann-Kendall z of the same pairs."""
    n = len(t)
    i, j = _pairs(n)
    dt, dy = t[j] - t[i], y[j] - y[i]
    ok = dt > 0
    slope = median(dy[ok] / dt[ok]) if ok.any() else 0.0
    resid = y - slope * t
    level = median(resid)
    spread = 1.4826 * median(np.abs(resid - level))
    s = float(np.sign(dy).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(var) if s else 0.0
    return Fit(slope, level, z, spread)


def _fit(t: np.ndarray, y: np.ndarray) -> Optional[Fit]:
    return theil_sen(t, y) if len(t) >= 3 else None


class Verdict(NamedTuple):
    eta: float  # seconds until the projected crossing, on a line (inf: none)
    eta_fire: float  # the same, slowed down by a deceleration (inf: it peaks before)
    eta_shown: float  # the crossing at the newer half's rate (what the message and the value say)
    rate: float  # units per minute: the newer half's rate
    z: float  # significance, toward the threshold (negative: away from it)
    toward: bool  # the newest quarter moved toward the threshold, on a trend clear of the noise
    past: bool  # the latest value is already past the threshold


class Forecast(Condition):
    """Holds while the series is expected to cross ``threshold`` (upward when ``rising``) within ``within``."""

    def __init__(self, threshold: float, rising: bool, within: float, window: float, min_samples: int) -> None:
        self.threshold, self.rising = threshold, rising
        self.within, self.span, self.min_samples = within, window, min_samples
        self.history = window  # no samples kept (window stays 0): its own slots, refilled after a restart
        self.width = window / SLOTS
        self._last: tuple[object, Optional[Verdict]] = (None, None)
        self.key = f"forecast:{threshold!r}:{rising}:{within!r}:{window!r}:{min_samples}"

    # -- the slots --------------------------------------------------------------------------------

    def _slots(self, ctx: Ctx) -> Optional[memoryview[float]]:
        """This rule's slots of the series (float32 cells), with its newest reading in (None: no reading yet)."""
        s = ctx.series
        if s.ts is None or s.value is None:
            return None
        slot = math.floor(s.ts / self.width)
        cells, created = s.state(self.key, lambda: array("d", array("f", [math.nan] * SLOTS + [0.0] * SLOTS + [
            slot % _WRAP] + [math.nan] * (_SIZE - _OPEN - 1)).tobytes()))
        st = cells.cast("B").cast("f")
        if created and s.seeded is not None:  # after a restart: the stored readings of the open slot first
            for ts, value in s.seeded[np.floor(s.seeded[:, 0] / self.width) == slot]:
                if ts < s.ts:
                    self._add(st, slot, float(ts), float(value))
        self._add(st, slot, s.ts, s.value)
        return st

    def _add(self, st: memoryview[float], slot: int, ts: float, value: float) -> None:
        opened = self._open(st, slot)
        if slot < opened:
            return  # a late reading for a closed slot: left out (the bridge publishes a series in order)
        at = _f32(ts - slot * self.width)
        if slot == opened and st[_AT] == at:
            return  # this reading is in already (a timer, the message)
        if slot > opened:
            for k in range(opened + 1, min(slot, opened + SLOTS) + 1):
                st[k % SLOTS], st[SLOTS + k % SLOTS] = math.nan, 0.0  # the new slot, and those with no reading
            st[_OPEN] = slot % _WRAP
        cell, meta = slot % SLOTS, SLOTS + slot % SLOTS
        n = math.floor(st[meta]) + 1
        frac = min(at / self.width, 0.999)
        mean, when = (value, frac) if n == 1 else (st[cell], st[meta] - (n - 1))
        st[cell] = mean + (value - mean) / n
        st[meta] = n + min(when + (frac - when) / n, 0.999)
        st[_AT] = at

    @staticmethod
    def _open(st: memoryview[float], slot: int) -> int:
        """The open slot's number (kept modulo _WRAP), from a slot number near it."""
        back = (slot - int(st[_OPEN])) % _WRAP
        return slot - back if back < _WRAP // 2 else slot + (_WRAP - back)

    def _points(self, st: memoryview[float], seeded: Optional[np.ndarray], opened: int) -> tuple[np.ndarray, ...]:
        """(times relative to the open slot's start, means, readings) of the closed slots with readings."""
        cells = np.frombuffer(st.cast("B"), dtype=np.float32, count=2 * SLOTS).astype(float)
        k = np.arange(opened - SLOTS + 1, opened)
        y, meta = cells[k % SLOTS], cells[SLOTS + k % SLOTS]
        if seeded is not None and np.isnan(y).any():
            y, meta = self._refill(seeded, k, y, meta)
            for i in np.flatnonzero(~np.isnan(y) & np.isnan(cells[k % SLOTS])):  # kept: refilled once
                st[int(k[i] % SLOTS)], st[SLOTS + int(k[i] % SLOTS)] = y[i], meta[i]
        ok = np.isfinite(y)  # (a slot past float32: left out)
        counts = np.floor(meta[ok])
        t = (k[ok] - opened + (meta[ok] - counts)) * self.width
        return t, y[ok], counts

    def _refill(self, seeded: np.ndarray, k: np.ndarray, y: np.ndarray, meta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Slots with no reading of their own take the stored readings (after a restart)."""
        at = seeded[:, 0] / self.width
        lo, hi = np.searchsorted(at, k), np.searchsorted(at, k + 1)
        n = hi - lo
        fill = np.isnan(y) & (n > 0)
        if not fill.any():
            return y, meta
        sums, whens = np.concatenate(([0.0], np.cumsum(seeded[:, 1]))), np.concatenate(([0.0], np.cumsum(at - k[0])))
        y, meta = y.copy(), meta.copy()
        y[fill] = (sums[hi] - sums[lo])[fill] / n[fill]
        meta[fill] = n[fill] + np.minimum((whens[hi] - whens[lo])[fill] / n[fill] - (k[fill] - k[0]), 0.999)
        return y, meta

    # -- the verdict ------------------------------------------------------------------------------

    def verdict(self, ctx: Ctx) -> Optional[Verdict]:
        """The forecast at the newest reading; None while the window holds too little."""
        s = ctx.series
        key = (id(s), s.ts, s.value)
        if self._last[0] == key:  # check, then value, for the same reading: one condition, one entry
            return self._last[1]
        out = self._verdict(ctx)
        self._last = (key, out)
        return out

    def _verdict(self, ctx: Ctx) -> Optional[Verdict]:
        st = self._slots(ctx)
        s = ctx.series
        if st is None or s.ts is None or s.value is None:
            return None
        opened = self._open(st, math.floor(s.ts / self.width))
        if st[_FITTED] != opened % _WRAP:  # once per slot, on the slots closed before it (NaN: never)
            self._refit(st, s.seeded, opened)
        v = st[_VERDICT:_VERDICT + _FIELDS]
        if not v[6]:
            return None
        sign = 1.0 if self.rising else -1.0
        elapsed = s.ts - opened * self.width  # since the fit (the open slot's start)
        eta, eta_fire, eta_shown = (max(0.0, x - elapsed) for x in v[:3])
        return Verdict(eta, eta_fire, eta_shown, v[3], v[4], bool(v[5]), sign * (s.value - self.threshold) >= 0)

    def _refit(self, st: memoryview[float], seeded: Optional[np.ndarray], opened: int) -> None:
        st[_FITTED] = opened % _WRAP
        t, y, counts = self._points(st, seeded, opened)
        out = self._compute(t, y, counts)
        st[_VERDICT:_VERDICT + _FIELDS] = array("f", out if out is not None else [math.inf] * 6 + [0.0])

    def _compute(self, t: np.ndarray, y: np.ndarray, counts: np.ndarray) -> Optional[list[float]]:
        if len(t) < 4 or counts.sum() < self.min_samples or -t[0] < self.span / 2:
            return None
        sign = 1.0 if self.rising else -1.0
        span = -t[0]
        full = _fit(t, y)
        assert full is not None  # at least 4 points
        far = self._eta(full, sign) > FAR * self.within
        if sign * full.z < Z_HOLD or far:  # no trend toward the threshold, or a crossing far beyond `within`
            # (the usual cases): neither fires nor holds
            return [math.inf, math.inf, math.inf, full.slope * 60.0, sign * full.z, 0.0, 1.0]
        half, newest = _fit(t[t >= -span / 2], y[t >= -span / 2]), _fit(t[t >= -span / 4], y[t >= -span / 4])
        # the decision: the slowest rate; the announcement: the newer half's (the rate now)
        slowest = min((f for f in (full, half, newest) if f is not None), key=lambda f: sign * f.slope)
        shown = half or full
        eta, eta_shown = self._eta(slowest, sign), self._eta(shown, sign)
        # (a deceleration only delays a crossing: not looked for when the line crosses too late anyway, even
        # counted down until the next fit)
        late = eta > self.within + self.width
        eta_fire = eta if late else max(eta, *(self._peaks(t, y, sign, part) for part in RECENT))
        eta_shown = eta_shown if math.isinf(eta_fire) or eta_fire <= eta else max(eta_shown, eta_fire)
        q = max(1, len(y) // 4)
        toward = bool(sign * (median(y[-q:]) - median(y[-2 * q:-q])) > 0)
        # fit quality: the trend over the window stands out of the noise around it (a flat noisy series
        # near the threshold can have a significant-looking tiny slope that projects a close crossing)
        clear = bool(sign * full.slope * span >= TREND_OVER_NOISE * full.spread)
        return [eta, eta_fire, eta_shown, shown.slope * 60.0, sign * full.z, float(toward and clear), 1.0]

    def _peaks(self, t: np.ndarray, y: np.ndarray, sign: float, part: float) -> float:
        """Seconds until the crossing on the parabola of a significant deceleration (inf: it peaks first);
        0 when the rise does not slow down."""
        recent = t >= -self.span * part
        if recent.sum() < 5:
            return 0.0
        x = np.vander(t[recent], 3)  # a t² + b t + c over the newest part of the window
        try:
            cov = np.linalg.inv(x.T @ x)
        except np.linalg.LinAlgError:
            return 0.0
        a, b, c = cov @ (x.T @ y[recent])
        # the noise of a slot from the second differences of successive slots (a smooth rise or fall hardly
        # moves them): 1.4826 x their MAD / sqrt(6)
        d2 = np.diff(y, 2)
        sd = 1.4826 * median(np.abs(d2 - median(d2))) / math.sqrt(6)
        se = sd * math.sqrt(cov[0, 0])
        if -sign * a <= DECEL_GATE * se:
            return 0.0  # not slowing down more than noise explains
        # the deceleration, on the cautious side: what the parabola says plus DECEL_Z standard errors
        decel = float(2 * (-sign * a + DECEL_Z * se))
        speed, gap = float(sign * b), float(sign * (self.threshold - c))
        if gap <= 0:
            return 0.0
        if speed <= 0 or speed * speed < 2 * decel * gap:
            return math.inf
        return (speed - math.sqrt(speed * speed - 2 * decel * gap)) / decel

    def _eta(self, fit: Fit, sign: float) -> float:
        speed = sign * fit.slope
        return max(0.0, sign * (self.threshold - fit.level)) / speed if speed > 0 else math.inf

    # -- the condition ----------------------------------------------------------------------------

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        v = self.verdict(ctx)
        if v is None:
            return None
        if v.past:
            return active  # the threshold rule speaks now; a forecast that came true stays until the trend turns
        if active:
            return self._holds(v)
        return bool(v.z >= Z_FIRE and v.toward and v.eta_fire <= self.within)

    def _holds(self, v: Verdict) -> bool:
        # hysteresis: a weaker trend, a later crossing and no deceleration guard keep a firing alert
        return bool(v.z >= Z_HOLD and v.eta <= self.within * CLEAR_FACTOR)

    def value(self, ctx: Ctx) -> Optional[float]:
        v = self.verdict(ctx)
        return v.eta_shown if v is not None and math.isfinite(v.eta_shown) else None

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """``reason`` (the default message), ``eta`` (seconds), ``rate`` (per minute), ``threshold``."""
        v = self.verdict(ctx)
        if v is None:
            return {}
        return {"reason": self._reason(ctx, v), "eta": self.value(ctx), "rate": v.rate, "threshold": self.threshold}

    def _reason(self, ctx: Ctx, v: Verdict) -> str:
        s = ctx.series
        unit = f" {s.unit}" if s.unit else ""
        where = f"{s.device}/{s.sensor}"
        limit = f"{self.threshold:.1f}{unit}"
        rate = f"{v.rate:+.2g}{unit}/min"
        if v.past:
            return f"{where} reached {limit}"
        if not self._holds(v):
            return f"{where} is no longer heading for {limit} (current rate {rate})"
        eta = v.eta_shown if math.isfinite(v.eta_shown) else v.eta
        return f"{where} will reach {limit} in {_about(eta)} at the current rate ({rate})"


def _about(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 7200:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
