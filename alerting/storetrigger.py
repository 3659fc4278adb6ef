"""The database trigger: rules over stored history, and history that refills rule windows."""

from __future__ import annotations

from pathlib import Path

from alerting.conditions import SeriesData, build_condition
from alerting.index import CompiledRule
from alerting.partition import owns
from alerting.rules import RuleSet
from vigil.app.config import VigilConfig
from vigil.core.event import SeriesKey
from vigil.core.stores import Store

__all__ = ["store_snapshots", "wants_store"]


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


def wants_store(config: VigilConfig, rules: RuleSet) -> bool:
    """Store rules need the store; windowed rules use it to refill their windows after a restart."""
    if any(r.spec.source == "store" for r in rules.rules):
        return True
    if not any(build_condition(r.spec).window > 0 for r in rules.rules):
        return False
    url = config.store.store_url()
    # the embedded default store only if the bridge made it: never create an empty one here
    return url.kind not in ("sqlite", "memory") or (url.kind == "sqlite" and Path(url.path).exists())
