"""all / any of several conditions, on the alert's series or on other named series."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ._base import Condition, Ctx

__all__ = ["Compound"]


class Compound(Condition):
    """``all``: every child holds; ``any``: at least one does. A child that cannot say counts as not holding."""

    def __init__(self, mode: str, children: list[Condition]) -> None:
        self.mode = mode
        self.children = children
        self.window = max((c.window for c in children), default=0.0)
        self.history = max((c.history for c in children), default=0.0)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        answers = []
        for i, child in enumerate(self.children):
            # each child keeps its own hysteresis memory
            key = f"child{i}"
            held = bool(ctx.scratch.get(key, False))
            sub = ctx.scratch.setdefault(f"scratch{i}", {})
            answer = child.check(replace(ctx, scratch=sub), held)
            if answer is not None:
                ctx.scratch[key] = answer
            answers.append(answer)
        if all(a is None for a in answers):
            return None
        if self.mode == "all":
            return all(bool(a) for a in answers)
        return any(bool(a) for a in answers)

    def value(self, ctx: Ctx) -> Optional[float]:
        for child in self.children:
            v = child.value(ctx)
            if v is not None:
                return v
        return None

    def next_change(self, ctx: Ctx) -> Optional[float]:
        dues = [d for c in self.children if (d := c.next_change(ctx)) is not None]
        return min(dues) if dues else None

    def series_refs(self) -> tuple[str, ...]:
        return tuple(s for c in self.children for s in c.series_refs())
