"""When the sensor is wrong: implausible jumps, and noise far above a series' own usual spread.

**Jump** (``jump: {max_step: 5, per: 1m}``): a reading further from the last plausible reading than the
sensor can physically move in the time between them (``max_step`` per ``per``, scaled by the elapsed time,
never less than ``max_step``) is flagged. The reference is the last *plausible* reading, so a spike and its
return make one alert (the return is plausible against the reading before the spike), and a sensor stuck
on a wild value stays flagged until enough time passed for the move to be possible after all. The
reference is kept per series (``SeriesData.memo``): after a restart the first reading is the new reference
(it is not judged). The value is the latest reading.

**Noise** (``noise: {factor: 5, window: 1h, recent: 5m}``): the spread of the successive differences of
the readings of the last ``recent`` (1.4826 x their median absolute deviation: robust, so one spike does
not count, and a trend does not either, as it moves the median, not the spread) more than ``factor``
times the same spread over the rest of ``window`` (the series' usual spread); it clears at half that
(hysteresis). Both spreads need a few differences (:data:`MIN_RECENT`, :data:`MIN_BASELINE`); noise that
lasts longer than the window becomes the new usual and clears. It is computed from the window's readings
only, so it is the same after a restart (the window is refilled from the store). The value is the ratio.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, NamedTuple, Optional

import numpy as np

from vigil.core.durations import format_duration

from ._base import Condition, Ctx, SeriesData
from .forecast import median

__all__ = ["Jump", "Noise", "spread"]

_REF_TS, _REF, _LAST, _JUMPED, _FROM, _ELAPSED = range(6)
MIN_RECENT = 5
MIN_BASELINE = 20
_MAD_SCALE = 1.4826
_MEAN_ABS_SCALE = 1.2533  # mean absolute deviation x this estimates the standard deviation of normal data


def _num(value: float, s: SeriesData) -> str:
    return f"{value:.1f} {s.unit}" if s.unit else f"{value:.1f}"


def _where(s: SeriesData) -> str:
    return f"{s.device}/{s.sensor}"


class Jump(Condition):
    """Holds while the latest reading is an implausible move from the last plausible one."""

    def __init__(self, max_step: float, per: float) -> None:
        self.max_step, self.per = max_step, per
        self.memo_key = f"jump:{max_step!r}:{per!r}"

    def _judge(self, ctx: Ctx) -> Optional[tuple[bool, float, float]]:
        """(implausible, reference value, seconds since the reference) of the latest reading; None: no
        reference yet. Judged once per reading (a late one too, without moving the reference). Kept per series and
        max_step/per in ``SeriesData.memo`` as 6 doubles: the reference's time and
        value, the latest judged reading's time, and its verdict (NaN: none)."""
        s = ctx.series
        if s.ts is None or s.value is None:
            return None
        ts, value = s.ts, s.value
        st, created = s.state(self.memo_key, lambda: array("d", [ts, value, ts, math.nan, 0.0, 0.0]))
        if not created and s.ts != st[_LAST]:
            # a late reading (older than the latest judged) is judged too, against the reference, so that
            # an implausible one cannot pass as the reading before it did; only a newer one moves the reference
            elapsed = abs(s.ts - st[_REF_TS])
            allowed = self.max_step * max(elapsed, self.per) / self.per
            jumped = abs(s.value - st[_REF]) > allowed
            st[_LAST], st[_JUMPED], st[_FROM], st[_ELAPSED] = s.ts, float(jumped), st[_REF], elapsed
            if not jumped and s.ts > st[_REF_TS]:
                st[_REF_TS], st[_REF] = s.ts, s.value
        return None if math.isnan(st[_JUMPED]) else (bool(st[_JUMPED]), st[_FROM], st[_ELAPSED])

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        verdict = self._judge(ctx)
        return None if verdict is None else verdict[0]

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """``reason`` (the default message), ``jumped_from`` (the last plausible reading), ``elapsed`` (seconds)."""
        verdict = self._judge(ctx)
        s = ctx.series
        if verdict is None or s.value is None:
            return {}
        jumped, ref, elapsed = verdict
        return {"reason": self._reason(s, jumped, ref, elapsed), "jumped_from": ref, "elapsed": elapsed}

    state_version = 2
    memo_cells = 6

    @staticmethod
    def _reason(s: SeriesData, jumped: bool, ref: float, elapsed: float) -> str:
        assert s.value is not None
        if not jumped:
            return f"{_where(s)} moves plausibly again ({_num(s.value, s)})"
        took = f"{elapsed:.0f} s" if elapsed < 60 else format_duration(elapsed)
        return f"{_where(s)} jumped from {ref:.1f} to {_num(s.value, s)} in {took}"


def spread(values: np.ndarray) -> float:
    """Robust standard deviation: 1.4826 x the MAD; when most values are equal (a coarse sensor), from the
    mean absolute deviation instead."""
    center = median(values)
    dev = np.abs(values - center)
    mad = median(dev)
    return _MAD_SCALE * mad if mad > 0 else _MEAN_ABS_SCALE * float(dev.mean())


class NoiseVerdict(NamedTuple):
    recent: float
    usual: float


class Noise(Condition):
    """Holds while the recent spread of successive differences is ``factor`` times the usual one."""

    def __init__(self, factor: float, window: float, recent: float, min_spread: float) -> None:
        self.factor, self.window, self.recent, self.min_spread = factor, window, recent, min_spread

    def verdict(self, ctx: Ctx) -> Optional[NoiseVerdict]:
        s = ctx.series
        if s.ts is None or not s.samples:
            return None
        key = (s.ts, len(s.samples), s.samples[0][0])
        if ctx.scratch.get("noise_key") == key:
            cached: Optional[NoiseVerdict] = ctx.scratch["noise"]
            return cached
        points = s.window(s.ts - self.window, s.ts)
        out = None
        if len(points) > MIN_RECENT + MIN_BASELINE + 1:
            arr = np.asarray(points, dtype=float)
            diffs, ends = np.diff(arr[:, 1]), arr[1:, 0]
            newer = ends > s.ts - self.recent
            if newer.sum() >= MIN_RECENT and (~newer).sum() >= MIN_BASELINE:
                out = NoiseVerdict(spread(diffs[newer]), spread(diffs[~newer]))
        ctx.scratch["noise_key"], ctx.scratch["noise"] = key, out
        return out

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        v = self.verdict(ctx)
        if v is None:
            return None
        factor = self.factor / 2 if active else self.factor
        return v.recent > self.min_spread and v.recent > factor * v.usual

    def value(self, ctx: Ctx) -> Optional[float]:
        v = self.verdict(ctx)
        if v is None or v.usual <= 0:
            return None
        return v.recent / v.usual

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """``reason`` (the default message), ``spread`` (recent), ``usual`` (the rest of the window)."""
        v = self.verdict(ctx)
        return {} if v is None else {"reason": self._reason(ctx.series, v), "spread": v.recent, "usual": v.usual}

    def _reason(self, s: SeriesData, v: NoiseVerdict) -> str:
        unit = f" {s.unit}" if s.unit else ""
        usual = f"its usual {v.usual:.2g}{unit}"
        if v.recent <= self.factor * v.usual:
            return f"{_where(s)} is calmer again: its readings vary by {v.recent:.2g}{unit} ({usual})"
        times = f"{v.recent / v.usual:.0f}x {usual}" if v.usual > 0 else usual
        return f"{_where(s)} is noisy: its readings vary by {v.recent:.2g}{unit} from one to the next, {times}"
