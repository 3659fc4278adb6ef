"""``vigil rules backtest``: replay stored history through the rules and tell what would have fired."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from alerting.replay import Replay
from alerting.rules import RuleSet
from alerting.transition import Transition
from broker_bridge.stores import Store
from vigil.event import Event

__all__ = ["BacktestResult", "backtest"]

_GLOB = set("*?[")


@dataclass
class BacktestResult:
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Transition] = field(default_factory=list)
    series: int = 0
    points: int = 0


def backtest(rules: RuleSet, store: Store, start: float, end: float) -> BacktestResult:
    """Every series a rule may watch, read from ``store`` between start and end, replayed in time order."""
    metrics = {r.spec.match.metric for r in rules.rules if r.spec.enabled}
    wanted: dict[str, Event] = {}
    for metric in metrics:
        for latest in store.latest(metric=None if _GLOB & set(metric) else metric):
            if fnmatch.fnmatchcase(latest.metric, metric):
                wanted[latest.series.id] = latest
    for r in rules.rules:
        for sid in r.spec.series or ():
            wanted.setdefault(sid, _placeholder(sid))
    events: list[Event] = []
    for latest in wanted.values():
        for p in store.query(latest.series, start, end):
            events.append(Event(latest.device, latest.sensor, latest.metric, p.value, p.ts, latest.unit,
                                labels=latest.labels))
    replay = Replay(rules, start)
    replay.run(events, until=end)
    return BacktestResult(replay.transitions, replay.notifications, len(wanted), len(events))


def _placeholder(sid: str) -> Event:
    device, sensor, metric = sid.split("/")
    return Event(device, sensor, metric, 0.0, 0.0)
