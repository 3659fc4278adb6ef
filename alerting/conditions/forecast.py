"""Forecast: "will cross THRESHOLD within DURATION", from a robust trend over a window.

The trend is a **Theil-Sen** fit (the median of the slopes between every pair of readings; the level is
the median of the residuals). Why Theil-Sen rather than least squares or a Huber fit: a door opened for
a few minutes (a block of high readings) or a few spikes barely move a median of slopes (breakdown point
~29 %), where least squares follows them; it needs no scale or tuning constant and no iterations (Huber
needs both), and the signs of the same pairwise differences give the **Mann-Kendall** statistic for free:
whether there is a trend at all. At most :data:`MAX_POINTS` readings (evenly spaced in the window) enter a
fit, so its cost is bounded (~2,000 pairs).

It fires only when all of these hold, so that noise, a door opened and closed, or a defrost cycle that
peaks below the threshold do not raise it:

- at least ``min_samples`` readings in the window, spanning at least half of it;
- the trend is significant: Mann-Kendall |z| >= :data:`Z_FIRE` (a flat noisy series: |z| ~ N(0, 1));
- the fit is good: the trend's change over the window is at least :data:`TREND_OVER_NOISE` times the
  spread of the readings around the line (robust: 1.4826 x the residuals' MAD);
- the newest quarter of the window already moved toward the threshold (its median beyond that of the
  quarter before it);
- the crossing is projected from the fitted line (not the latest reading: a spike moves neither), at the
  slowest of three rates, over the whole window, its newer half and its newest quarter: a rise that just
  began is damped by the flat readings before it (a rise shorter than the window, such as a defrost's
  heater run, counts for less), and a defrost that levels off toward its peak projects no crossing.

It does **not** fire when the latest value is already past the threshold: that is a threshold rule's job.
An alert already firing stays firing when the value gets there (the forecast came true), and resolves when
the trend turns: the projected crossing moves beyond ``within`` x :data:`CLEAR_FACTOR`, or the trend is no
longer significant (|z| < :data:`Z_HOLD`), and the value is back on the right side. It is stateless (all
from the window's readings), so it is the same after a restart (the window is refilled from the store), in
``vigil rules test`` and in ``vigil rules backtest``. The value (and the message) is the seconds until the
expected crossing at the rate of the window's newer half (the rate now; the decision used the slowest).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple, Optional

import numpy as np

from ._base import Condition, Ctx

__all__ = ["Forecast", "median", "theil_sen"]

MAX_POINTS = 64
Z_FIRE = 3.0
Z_HOLD = 2.0
CLEAR_FACTOR = 1.5
TREND_OVER_NOISE = 3.0


class Fit(NamedTuple):
    slope: float  # units per second
    level: float  # the fitted line at the newest reading
    z: float  # Mann-Kendall z (sign: the trend's direction)
    spread: float  # robust standard deviation of the residuals (1.4826 x their MAD)


@lru_cache(maxsize=MAX_POINTS + 1)
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
    """The Theil-Sen line through (t, y) (t ascending, at least 3 points), its level at t[-1], and the
    Mann-Kendall z of the same pairs."""
    n = len(t)
    i, j = _pairs(n)
    dt, dy = t[j] - t[i], y[j] - y[i]
    ok = dt > 0
    slope = median(dy[ok] / dt[ok]) if ok.any() else 0.0
    resid = y - slope * (t - t[-1])
    level = median(resid)
    spread = 1.4826 * median(np.abs(resid - level))
    s = float(np.sign(dy).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(var) if s else 0.0
    return Fit(slope, level, z, spread)


def _fit(t: np.ndarray, y: np.ndarray) -> Optional[Fit]:
    """Theil-Sen on at most MAX_POINTS of the points (evenly spaced); None for fewer than 3."""
    if len(t) < 3:
        return None
    if len(t) > MAX_POINTS:
        keep = np.linspace(0, len(t) - 1, MAX_POINTS).astype(int)
        t, y = t[keep], y[keep]
    return theil_sen(t, y)


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
        self.within, self.window, self.min_samples = within, window, min_samples

    def verdict(self, ctx: Ctx) -> Optional[Verdict]:
        """The forecast at the newest reading; None while the window holds too little."""
        s = ctx.series
        if s.ts is None or s.value is None or not s.samples:
            return None
        key = (s.ts, len(s.samples), s.samples[0][0])
        if ctx.scratch.get("forecast_key") == key:
            cached: Optional[Verdict] = ctx.scratch["forecast"]
            return cached
        out = self._compute(s.window(s.ts - self.window, s.ts), s.ts, s.value)
        ctx.scratch["forecast_key"], ctx.scratch["forecast"] = key, out
        return out

    def _compute(self, points: list[tuple[float, float]], end: float, latest: float) -> Optional[Verdict]:
        if len(points) < max(4, self.min_samples) or end - points[0][0] < self.window / 2:
            return None
        arr = np.asarray(points, dtype=float)
        t, y = arr[:, 0] - end, arr[:, 1]
        sign = 1.0 if self.rising else -1.0
        span = -t[0]
        parts = [t >= -span, t >= -span / 2, t >= -span / 4, (t >= -span / 2) & (t < -span / 4)]
        full = _fit(t, y)
        assert full is not None  # at least 4 points
        past = sign * (latest - self.threshold) >= 0
        if sign * full.z < Z_HOLD:  # no trend toward the threshold (the usual case): neither fires nor holds
            return Verdict(math.inf, math.inf, math.inf, full.slope * 60.0, sign * full.z, False, past)
        half, newest, before = (_fit(t[p], y[p]) for p in parts[1:])
        # the decision: the slowest rate; the announcement: the newer half's (the rate now)
        slowest = min((f for f in (full, half, newest) if f is not None), key=lambda f: sign * f.slope)
        shown = half or full
        eta, eta_shown = self._eta(slowest, sign), self._eta(shown, sign)
        eta_fire = eta
        if newest is not None and before is not None and sign * newest.slope < sign * before.slope:
            # slowing down (a defrost nearing its peak): the parabola through the two newest quarters' rates
            decel = sign * (before.slope - newest.slope) / (span / 4)
            speed = max(0.0, sign * newest.slope)
            gap = max(0.0, sign * (self.threshold - newest.level))
            arrival = math.inf if speed * speed < 2 * decel * gap else (
                speed - math.sqrt(speed * speed - 2 * decel * gap)) / decel
            eta_fire, eta_shown = max(eta, arrival), max(eta_shown, arrival)
        q = max(1, len(y) // 4)
        toward = bool(sign * (median(y[-q:]) - median(y[-2 * q:-q])) > 0)
        # fit quality: the trend over the window stands out of the noise around it (a flat noisy series
        # near the threshold can have a significant-looking tiny slope that projects a close crossing)
        clear = bool(sign * full.slope * span >= TREND_OVER_NOISE * full.spread)
        return Verdict(float(eta), float(eta_fire), float(eta_shown), shown.slope * 60.0, sign * full.z,
                       toward and clear, past)

    def _eta(self, fit: Fit, sign: float) -> float:
        speed = sign * fit.slope
        return max(0.0, sign * (self.threshold - fit.level)) / speed if speed > 0 else math.inf

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
