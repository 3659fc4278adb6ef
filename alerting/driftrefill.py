"""After a start, drift rules' hourly medians refilled from the store (alerting/conditions/drift.py).

Drift keeps no readings, only one value an hour per series over ``over`` (days): the store has that
history, so one query per series with hourly buckets refills it. A firing alert's frozen baseline is
computed again from the ``over`` before it began to fire, so a restart neither resolves it early nor
tells it again.
"""

from __future__ import annotations

import asyncio
import logging

from alerting.conditions import Drift, SeriesData
from alerting.conditions.status import STATUS_METRIC
from alerting.engine import Engine
from alerting.partition import owns
from alerting.transition import AlertState
from vigil.core.event import SeriesKey
from vigil.core.stores import Store, StoreError

__all__ = ["refill_drift"]

log = logging.getLogger(__name__)

HOUR = 3600.0


def _hourly(store: Store, data: SeriesData, start: float, end: float) -> list[tuple[float, float]]:
    points = store.query(SeriesKey(data.metric, data.device, data.sensor), start, end, HOUR)
    return [(p.ts, p.value) for p in points]


async def refill_drift(engine: Engine, store: Store, now: float) -> None:
    """Refill every drift rule's hours of the series it watches (this engine's partition)."""
    filled = 0
    try:
        for c in list(engine.index.rules.values()):
            cond = c.condition
            if not isinstance(cond, Drift) or c.rule.spec.source == "store":
                continue
            for sid, data in list(engine.series.items()):
                if data.metric == STATUS_METRIC or not owns(sid, engine.partition) or not c.matches(
                        data.device, data.sensor, data.metric, dict(data.labels)):
                    continue
                hourly = await asyncio.to_thread(_hourly, store, data, now - cond.over, now + 0.001)
                cond.refill(data, engine.scratch.setdefault(f"{c.name}/{sid}", {}), hourly)
                filled += 1
            for rec in list(engine.alerts.values()):
                series = engine.series.get(rec.series)
                if rec.rule != c.name or rec.underlying != AlertState.FIRING or rec.firing_since is None \
                        or series is None:
                    continue
                at = rec.firing_since
                own = await asyncio.to_thread(_hourly, store, series, at - cond.over, at)
                sibs = [await asyncio.to_thread(_hourly, store, engine.series[sid], at - cond.over, at)
                        for sid in cond.siblings(series) if sid in engine.series]
                cond.rebase(engine.scratch.setdefault(rec.key, {}), at, own, sibs)
    except (StoreError, ValueError) as exc:
        log.warning("cannot read history from the store to refill drift rules: %s", exc)
    if filled:
        log.info("refilled the hourly history of %d series for drift rules from the store", filled)
