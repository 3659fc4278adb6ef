"""When the sensor is wrong: implausible jumps, and noise far above a series' own usual spread.

**Jump** (``jump: {max_step: 5, per: 1m}``): a reading further from the last plausible reading than the
sensor can physically move in the time between them (``max_step`` per ``per``, scaled by the elapsed time,
never less than ``max_step``) is flagged. The reference is the last *plausible* reading, so a spike and its
return make one alert (the return is plausible against the reading before the spike), and a sensor stuck
on a wild value stays flagged until enough time passed for the move to be possible after all. The
reference is kept in the alert's scratch state: after a restart the first reading is the new reference
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

from typing import Any, NamedTuple, Optional

import numpy as np

from vigil.core.durations import format_duration

from ._base import Condition, Ctx, SeriesData, finite
from .forecast import median

__all__ = ["Jump", "Noise", "spread"]

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

    def _judge(self, ctx: Ctx) -> Optional[tuple[bool, float, float]]:
        """(implausible, reference value, seconds since the reference) of the latest reading; None: no
        reference yet. Judged once per reading; a late reading changes nothing."""
        s, st = ctx.series, ctx.scratch
        if s.ts is None or s.value is None:
            return None
        last = st.get("jump_last")
        if last is not None and s.ts <= last[0]:
            judged: Optional[tuple[bool, float, float]] = st.get("jump_verdict")
            return judged
        ref = st.get("jump_ref")
        verdict = None
        if ref is not None:
            elapsed = s.ts - ref[0]
            allowed = self.max_step * max(elapsed, self.per) / self.per
            verdict = (abs(s.value - ref[1]) > allowed, float(ref[1]), elapsed)
        if verdict is None or not verdict[0]:
            st["jump_ref"] = (s.ts, s.value)
        st["jump_last"], st["jump_verdict"] = (s.ts, s.value), verdict
        return verdict

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

    state_version = 1

    def export(self, ctx: Ctx) -> Optional[dict[str, Any]]:
        """The last plausible reading, the latest one and its verdict."""
        scratch = ctx.scratch
        if "jump_ref" not in scratch:
            return None
        verdict = scratch.get("jump_verdict")
        return {"ref": list(scratch["jump_ref"]), "last": list(scratch["jump_last"]),
                "verdict": None if verdict is None else [bool(verdict[0]), verdict[1], verdict[2]]}

    def restore(self, ctx: Ctx, data: Any) -> None:
        ref, last, verdict = data["ref"], data["last"], data["verdict"]
        if verdict is not None and not isinstance(verdict[0], bool):
            raise ValueError("the verdict is not a boolean")
        ctx.scratch.update(jump_ref=(finite(ref[0]), finite(ref[1])), jump_last=(finite(last[0]), finite(last[1])),
                           jump_verdict=None if verdict is None else (verdict[0], finite(verdict[1]),
                                                                      finite(verdict[2])))

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
