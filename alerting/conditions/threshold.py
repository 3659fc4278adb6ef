"""above / below / outside a range, each with an optional clear threshold (hysteresis)."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["Threshold", "crosses"]


def crosses(value: float, active: bool, above: Optional[float], below: Optional[float],
            clear_below: Optional[float], clear_above: Optional[float]) -> bool:
    """Whether a value holds the threshold condition, given whether it held before."""
    if active:
        # An active alert stays active until the value passes its clear threshold.
        hi = clear_below if clear_below is not None else above
        lo = clear_above if clear_above is not None else below
        return (hi is not None and value >= hi) or (lo is not None and value <= lo)
    return (above is not None and value > above) or (below is not None and value < below)


class Threshold(Condition):
    """The latest value (of its own series, another, or the difference of two) against thresholds."""

    def __init__(self, above: Optional[float], below: Optional[float], clear_below: Optional[float] = None,
                 clear_above: Optional[float] = None, series: Optional[str] = None,
                 difference: Optional[tuple[str, str]] = None) -> None:
        self.above, self.below = above, below
        self.clear_below, self.clear_above = clear_below, clear_above
        self.series = series
        self.difference = difference

    def value(self, ctx: Ctx) -> Optional[float]:
        if self.difference is not None:
            a, b = (ctx.lookup(s) for s in self.difference)
            if a is None or b is None or a.value is None or b.value is None:
                return None
            return a.value - b.value
        data = ctx.lookup(self.series) if self.series else ctx.series
        return data.value if data is not None else None

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        v = self.value(ctx)
        if v is None:
            return None
        return crosses(v, active, self.above, self.below, self.clear_below, self.clear_above)

    def series_refs(self) -> tuple[str, ...]:
        if self.difference is not None:
            return self.difference
        return (self.series,) if self.series else ()
