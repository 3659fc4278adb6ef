"""``vigil rules backtest``: replay stored history through the rules and tell what would have fired."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Optional

from alerting.index import RuleIndex
from alerting.replay import Replay, events_ruleset
from alerting.rules import RuleSet
from alerting.transition import Transition
from vigil.core.event import Event
from vigil.core.stores import Store

__all__ = ["BacktestResult", "backtest", "watched_series"]

_GLOB = set("*?[")


@dataclass
class BacktestResult:
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Transition] = field(default_factory=list)
    series: int = 0
    points: int = 0


def backtest(rules: RuleSet, store: Store, start: float, end: float,
             max_series: Optional[int] = None) -> BacktestResult:
    """Every series a rule watches, read from ``store`` between start and end, replayed in time order.

    Only the series a rule's ``match`` selects (or names in ``series:``) are read: a rule for one freezer
    does not replay every temperature of the site. With more than ``max_series`` of them nothing is read
    and the result has only ``series``.
    """
    wanted = watched_series(rules, store)
    if max_series is not None and len(wanted) > max_series:
        return BacktestResult(series=len(wanted))
    events: list[Event] = []
    for latest in wanted.values():
        device, sensor, metric, unit, labels = latest.device, latest.sensor, latest.metric, latest.unit, latest.labels
        events += [Event(device, sensor, metric, p.value, p.ts, unit, labels=labels)
                   for p in store.query(latest.series, start, end)]
    replay = Replay(rules, start)
    replay.run(events, until=end)
    return BacktestResult(replay.transitions, replay.notifications, len(wanted), len(events))


def watched_series(rules: RuleSet, store: Store) -> dict[str, Event]:
    """The latest reading of every stored series an enabled rule watches, by series id (as the engine matches)."""
    index = RuleIndex(events_ruleset(rules))
    metrics = {r.spec.match.metric for r in rules.rules if r.spec.enabled}
    wanted: dict[str, Event] = {}
    for metric in metrics:
        for latest in store.latest(metric=None if _GLOB & set(metric) else metric):
            sid = latest.series.id
            if fnmatch.fnmatchcase(latest.metric, metric) and index.for_series(
                    sid, latest.device, latest.sensor, latest.metric, dict(latest.labels)):
                wanted[sid] = latest
    for r in rules.rules:
        for sid in r.spec.series or ():
            wanted.setdefault(sid, _placeholder(sid))
    return wanted


def _placeholder(sid: str) -> Event:
    device, sensor, metric = sid.split("/")
    return Event(device, sensor, metric, 0.0, 0.0)
