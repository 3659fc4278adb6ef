"""Anomaly: the latest value far from the series' recent behaviour (z-score, EWMA band, MAD)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._base import Condition, Ctx

__all__ = ["Anomaly"]

# MAD * 1.4826 estimates the standard deviation of normally distributed data.
_MAD_SCALE = 1.4826


class Anomaly(Condition):
    """Score of the newest sample against the samples before it; quiet for the first ``warmup`` samples."""

    def __init__(self, method: str, window: float, threshold: float, warmup: int, alpha: float) -> None:
        self.method, self.window = method, window
        self.threshold, self.warmup, self.alpha = threshold, warmup, alpha

    def value(self, ctx: Ctx) -> Optional[float]:
        return ctx.series.value

    def score(self, ctx: Ctx) -> Optional[float]:
        """How many (robust) deviations the newest sample is from the baseline; None while warming up."""
        s = ctx.series
        if s.ts is None or s.value is None:
            return None
        if self.method == "ewma":
            return self._ewma(ctx)
        history = [v for _, v in s.window(s.ts - self.window, s.ts)]
        history = history[:-1]  # the baseline excludes the sample being judged
        if len(history) < self.warmup:
            return None
        arr = np.fromiter(history, dtype=float, count=len(history))
        if self.method == "mad":
            center = float(np.median(arr))
            spread = float(np.median(np.abs(arr - center))) * _MAD_SCALE
        else:
            center, spread = float(arr.mean()), float(arr.std())
        return _deviations(s.value, center, spread)

    def _ewma(self, ctx: Ctx) -> Optional[float]:
        # Incremental per alert: each new sample updates mean and variance once.
        st = ctx.scratch
        s = ctx.series
        assert s.ts is not None and s.value is not None
        if st.get("ewma_ts") == s.ts:
            return st.get("ewma_score")
        n = st.get("ewma_n", 0)
        mean, var = st.get("ewma_mean", s.value), st.get("ewma_var", 0.0)
        score = _deviations(s.value, mean, math.sqrt(var)) if n >= self.warmup else None
        diff = s.value - mean
        incr = self.alpha * diff
        st["ewma_mean"] = mean + incr
        st["ewma_var"] = (1 - self.alpha) * (var + diff * incr)
        st["ewma_n"] = n + 1
        st["ewma_ts"], st["ewma_score"] = s.ts, score
        return score

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        score = self.score(ctx)
        if score is None:
            return None if ctx.series.value is None else False
        return abs(score) > self.threshold


def _deviations(value: float, center: float, spread: float) -> float:
    if spread <= 1e-12:
        return 0.0 if abs(value - center) <= 1e-12 else math.copysign(math.inf, value - center)
    return (value - center) / spread
