"""Turn a validated condition spec (YAML) into a Condition."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from alerting.rulespec import ConditionSpec, NodataSpec

from ._base import Condition, Ctx
from .aggregate import Aggregate
from .anomaly import Anomaly
from .compound import Compound
from .drift import Drift
from .forecast import Forecast
from .jump import Jump, Noise
from .nodata import NoData
from .rate import Rate
from .restarts import Restarts
from .stale import Stale
from .status import Offline
from .stuck import Stuck
from .threshold import Threshold

__all__ = ["OnSeries", "build_condition"]


class OnSeries(Condition):
    """A condition evaluated on another named series (inside a cross-series all/any)."""

    def __init__(self, series: str, inner: Condition) -> None:
        self.series = series
        self.inner = inner
        self.window = inner.window
        self.history = inner.history

    def _ctx(self, ctx: Ctx) -> Optional[Ctx]:
        data = ctx.lookup(self.series)
        return None if data is None else replace(ctx, series=data)

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        sub = self._ctx(ctx)
        return None if sub is None else self.inner.check(sub, active)

    def value(self, ctx: Ctx) -> Optional[float]:
        sub = self._ctx(ctx)
        return None if sub is None else self.inner.value(sub)

    def next_change(self, ctx: Ctx) -> Optional[float]:
        sub = self._ctx(ctx)
        return None if sub is None else self.inner.next_change(sub)

    def series_refs(self) -> tuple[str, ...]:
        return (self.series, *self.inner.series_refs())

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        sub = self._ctx(ctx)
        return {} if sub is None else self.inner.facts(sub)


def build_condition(spec: ConditionSpec) -> Condition:
    """The Condition a spec describes (the spec was validated: exactly one kind)."""
    cond: Condition
    if spec.all is not None or spec.any is not None:
        mode = "all" if spec.all is not None else "any"
        cond = Compound(mode, [build_condition(c) for c in (spec.all or spec.any or [])])
    elif spec.above is not None or spec.below is not None:
        diff = (spec.difference.a, spec.difference.b) if spec.difference is not None else None
        cond = Threshold(spec.above, spec.below, spec.clear_below, spec.clear_above, difference=diff)
    elif spec.rate is not None:
        cond = Rate(spec.rate.window, spec.rate.above, spec.rate.below)
    elif spec.nodata is not None:
        after = spec.nodata.after if isinstance(spec.nodata, NodataSpec) else float(spec.nodata)
        cond = NoData(after)
    elif spec.aggregate is not None:
        a = spec.aggregate
        cond = Aggregate(a.fn, a.window, a.above, a.below, a.clear_below, a.clear_above)
    elif spec.anomaly is not None:
        an = spec.anomaly
        # the window also bounds how many samples are kept for the baseline
        cond = Anomaly(an.method, an.window, an.threshold, an.warmup, an.alpha)
        cond.window = an.window
    elif spec.offline:
        cond = Offline()
    elif spec.stale is not None:
        st = spec.stale
        cond = Stale(st.after, st.factor, st.min, st.warmup)
    elif spec.stuck is not None:
        sk = spec.stuck
        groups = [sk.siblings] if isinstance(sk.siblings, str) else sk.siblings
        cond = Stuck(sk.after, sk.factor, sk.min, sk.warmup, sk.band, groups)
    elif spec.forecast is not None:
        f = spec.forecast
        rising = f.above is not None
        level = f.above if f.above is not None else f.below
        assert level is not None
        cond = Forecast(level, rising, f.within, f.window, f.min_samples)
    elif spec.jump is not None:
        cond = Jump(spec.jump.max_step, spec.jump.per)
    elif spec.noise is not None:
        n = spec.noise
        cond = Noise(n.factor, n.window, n.recent, n.min_spread)
    elif spec.drift is not None:
        d = spec.drift
        cond = Drift(d.max, d.over, [d.siblings] if isinstance(d.siblings, str) else d.siblings)
    elif spec.restarts is not None:
        cond = Restarts(spec.restarts.count, spec.restarts.within)
    else:  # pragma: no cover - the spec validator guarantees one kind
        raise ValueError("no condition")
    if isinstance(spec.series, str):
        return OnSeries(spec.series, cond)
    return cond
