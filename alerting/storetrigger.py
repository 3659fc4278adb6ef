"""The database trigger: rules over stored history, and history that refills rule windows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from alerting.conditions import SeriesData, build_condition
from alerting.driftrefill import refill_drift
from alerting.engine import Engine
from alerting.index import CompiledRule
from alerting.partition import owns
from alerting.rules import RuleSet
from alerting.transition import Transition
from vigil.core.clock import Clock
from vigil.core.event import SeriesKey
from vigil.core.settings import StoreSettings
from vigil.core.stores import Store, StoreError

__all__ = ["run_store_rules", "seed_windows", "store_snapshots", "wants_store"]

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at which store rule is due


def store_snapshots(store: Store, c: CompiledRule, now: float, partition: tuple[int, int]) -> list[SeriesData]:
    """The series a store rule watches, as SeriesData read from the store (runs in a thread)."""
    spec = c.rule.spec
    metric = spec.match.metric if not set("*?[") & set(spec.match.metric) else None
    out = []
    for latest in store.latest(metric=metric):
        sid = latest.series.id
        if not c.matches(latest.device, latest.sensor, latest.metric, dict(latest.labels)):
            continue
        if not owns(sid, partition):
            continue
        data = SeriesData(sid, latest.device, latest.sensor, latest.metric, latest.labels, latest.unit)
        data.value, data.ts, data.last_seen = latest.value, latest.ts, latest.ts
        if spec.aggregate is not None:
            data.keep = spec.aggregate.window
            points = store.query(SeriesKey(latest.metric, latest.device, latest.sensor),
                                 now - spec.aggregate.window, now + 0.001)
            for p in points:
                data.add(p.ts, p.value, latest.ts)
            data.last_seen = latest.ts
        out.append(data)
    return out


def wants_store(settings: StoreSettings, rules: RuleSet) -> bool:
    """Store rules need the store; windowed rules use it to refill their windows after a restart."""
    if any(r.spec.source == "store" for r in rules.rules):
        return True
    if not any(build_condition(r.spec).window > 0 or r.spec.drift is not None for r in rules.rules):
        return False
    url = settings.store_url()
    # the embedded default store only if the bridge made it: never create an empty one here
    return url.kind not in ("sqlite", "memory") or (url.kind == "sqlite" and Path(url.path).exists())


async def run_store_rules(engine: Engine, store: Store, clock: Clock,
                          publish: Callable[[list[Transition]], None]) -> None:
    """Rules with ``source: store``: each on its own schedule, against stored history."""
    last: dict[str, float] = {}
    while True:
        now = clock.now()
        for c in list(engine.index.store_rules):
            if now - last.get(c.name, float("-inf")) < c.rule.spec.every:
                continue
            last[c.name] = now
            try:
                snapshots = await asyncio.to_thread(store_snapshots, store, c, now, engine.partition)
            except (StoreError, ValueError) as exc:
                log.warning("rule %s: cannot read the store: %s", c.name, exc)
                continue
            for data in snapshots:
                publish(engine.evaluate_series(c, data, now))
        await clock.sleep(POLL)


async def seed_windows(engine: Engine, store: Store, clock: Clock) -> None:
    """After a start, fill the windows of rate/aggregate/anomaly rules (and forecasts' slots) from the store."""
    now = clock.now()
    seeded = 0
    for sid, data in list(engine.series.items()):
        rules = [*engine.index.for_series(sid, data.device, data.sensor, data.metric, dict(data.labels)),
                 *engine.index.by_ref.get(sid, ())]
        span = max([data.keep, *(c.condition.history for c in rules)])
        if span <= 0 or data.metric == "status":
            continue
        key = SeriesKey(data.metric, data.device, data.sensor)
        try:
            points = await asyncio.to_thread(store.query, key, now - span, now + 0.001)
        except (StoreError, ValueError) as exc:
            log.warning("cannot read history from the store to fill rule windows: %s", exc)
            return
        data.seed([(p.ts, p.value) for p in points])
        seeded += 1
    if seeded:
        log.info("filled the rule windows of %d series from the store", seeded)
    await refill_drift(engine, store, now)

