"""No data: a series that has reported before (or is declared) fell silent for a while."""

from __future__ import annotations

from typing import Optional

from ._base import Condition, Ctx

__all__ = ["NoData"]


class NoData(Condition):
    """Active when nothing arrived for ``after`` seconds; silent for a series never heard of.

    Silence is measured on source time (when the latest reading was taken). After the engine
    could not hear its input (``ctx.resumed``), an alert not already active counts from the time
    input came back: the engine's own deafness is not the sensor's silence.
    """

    def __init__(self, after: float) -> None:
        self.after = after

    def value(self, ctx: Ctx) -> Optional[float]:
        seen = ctx.series.last_seen
        return None if seen is None else max(0.0, ctx.at - seen)

    @staticmethod
    def _since(ctx: Ctx, active: bool) -> Optional[float]:
        seen = ctx.series.last_seen
        if seen is None:
            # declared series start counting when the engine first learned of them
            declared = ctx.scratch.get("declared_at")
            seen = None if declared is None else float(declared)
        if seen is not None and ctx.resumed is not None and not active:
            seen = max(seen, ctx.resumed)
        return seen

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        seen = self._since(ctx, active)
        if seen is None:
            return None
        return ctx.at >= seen + self.after  # as next_change's due time: its timer finds it due

    def next_change(self, ctx: Ctx) -> Optional[float]:
        seen = self._since(ctx, False)
        if seen is None:
            return None
        due = seen + self.after
        return due if due > ctx.at else None
