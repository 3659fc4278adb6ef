"""A backtest (and the dashboard's preview) reads only the series a rule watches, not every one of its metric."""

from __future__ import annotations

import textwrap

from alerting.backtest import backtest
from alerting.rules import load_rules_text
from vigil.core.event import Event
from vigil.core.stores import open_store

T0 = 1_700_000_000.0
RULES = textwrap.dedent("""
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer-*", labels: {room: kitchen}}
    above: -15
    for: 5m
""")


def test_only_the_matching_series_are_read_and_too_many_are_not_read_at_all() -> None:
    store = open_store("memory://")
    warm = [-20.0] * 5 + [-10.0] * 10 + [-20.0] * 5
    store.write([Event("freezer-1", "t0", "temperature", v, T0 + i * 60, "°C", labels=(("room", "kitchen"),))
                 for i, v in enumerate(warm)])
    store.write([Event("freezer-2", "t0", "temperature", -10.0, T0 + i * 60, "°C", labels=(("room", "cellar"),))
                 for i in range(20)])
    store.write([Event("oven", "t0", "temperature", 200.0, T0 + i * 60, "°C", labels=(("room", "kitchen"),))
                 for i in range(20)])
    rules, _ = load_rules_text(RULES, "rules.yaml")
    result = backtest(rules, store, T0, T0 + 3600)
    assert (result.series, result.points) == (1, 20)
    assert [(t.state.value, t.series) for t in result.notifications] == [
        ("firing", "freezer-1/t0/temperature"), ("resolved", "freezer-1/t0/temperature")]
    capped = backtest(rules, store, T0, T0 + 3600, max_series=0)
    assert (capped.series, capped.points, capped.transitions) == (1, 0, [])
