"""A windowed aggregate (avg, min, max, median, a percentile) compared to thresholds."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._base import Condition, Ctx
from .threshold import crosses

__all__ = ["Aggregate", "aggregate"]


def aggregate(fn: str, values: list[float]) -> float:
    """``fn`` of ``values`` (non-empty) with numpy: avg/mean, min, max, median or pNN."""
    arr = np.fromiter(values, dtype=float, count=len(values))
    if fn in ("avg", "mean"):
        return float(arr.mean())
    if fn == "min":
        return float(arr.min())
    if fn == "max":
        return float(arr.max())
    if fn == "median":
        return float(np.median(arr))
    return float(np.percentile(arr, float(fn[1:])))


class Aggregate(Condition):
    """``fn`` over the samples of the last ``window`` seconds (up to the evaluation time)."""

    def __init__(self, fn: str, window: float, above: Optional[float], below: Optional[float],
                 clear_below: Optional[float] = None, clear_above: Optional[float] = None) -> None:
        self.fn, self.window = fn, window
        self.above, self.below = above, below
        self.clear_below, self.clear_above = clear_below, clear_above

    def value(self, ctx: Ctx) -> Optional[float]:
        points = ctx.series.window(ctx.at - self.window, ctx.at)
        return aggregate(self.fn, [v for _, v in points]) if points else None

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        v = self.value(ctx)
        if v is None:
            # every sample left the window: nothing to say, the nodata rules speak for silence
            return None
        return crosses(v, active, self.above, self.below, self.clear_below, self.clear_above)

    def next_change(self, ctx: Ctx) -> Optional[float]:
        points = ctx.series.window(ctx.at - self.window, ctx.at)
        return points[0][0] + self.window if points else None
