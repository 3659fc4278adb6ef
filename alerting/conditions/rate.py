"""Rate of change: the change per minute over a window (first to last sample in it)."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["Rate"]


class Rate(Condition):
    """Active when the value rises faster than ``above`` or falls faster than ``below`` per minute."""

    def __init__(self, window: float, above: Optional[float], below: Optional[float]) -> None:
        self.window = window
        self.above, self.below = above, below

    def value(self, ctx: Ctx) -> Optional[float]:
        end = ctx.series.ts
        if end is None:
            return None
        points = ctx.series.window(end - self.window, end)
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return None
        (t0, v0), (t1, v1) = points[0], points[-1]
        return (v1 - v0) / (t1 - t0) * 60.0

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        per_min = self.value(ctx)
        if per_min is None:
            return None
        return (self.above is not None and per_min > self.above) or (
            self.below is not None and per_min < self.below)
