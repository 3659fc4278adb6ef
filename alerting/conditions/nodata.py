"""No data: a series that has reported before (or is declared) fell silent for a while."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["NoData"]


class NoData(Condition):
    """Active when nothing arrived for ``after`` seconds; silent for a series never heard of."""

    def __init__(self, after: float) -> None:
        self.after = after

    def value(self, ctx: Ctx) -> Optional[float]:
        seen = ctx.series.last_seen
        return None if seen is None else max(0.0, ctx.at - seen)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        seen = ctx.series.last_seen
        if seen is None:
            # declared series start counting when the engine first learned of them
            seen = ctx.scratch.get("declared_at")
            if seen is None:
                return None
        return ctx.at - seen >= self.after

    def next_change(self, ctx: Ctx) -> Optional[float]:
        seen = ctx.series.last_seen if ctx.series.last_seen is not None else ctx.scratch.get("declared_at")
        if seen is None:
            return None
        due = float(seen) + self.after
        return due if due > ctx.at else None
