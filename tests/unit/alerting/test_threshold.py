"""Thresholds, hysteresis, for, keep_firing_for, and timers that fire with no new message."""

from __future__ import annotations

from alerting.transition import AlertState
from tests.support.engine import T0, engine, feed

FREEZER = """
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer-*"}
    above: -15
    clear_below: -17
    for: 5m
    severity: critical
    message: "{{ device }} is at {{ value | round(1) }} °C since {{ since }}"
"""


def test_for_fires_at_five_minutes_without_a_new_message() -> None:
    e, sink, clock = engine(FREEZER)
    t = feed(e, clock, -10.0)
    assert [x.state for x in t] == [AlertState.PENDING]
    assert sink.items == []  # pending is not notified
    clock.advance(299)
    assert e.tick() == []
    clock.advance(1)
    fired = e.tick()
    assert [x.state for x in fired] == [AlertState.FIRING]
    assert fired[0].at == T0 + 300
    assert sink.items[0].message == "freezer-1 is at -10.0 °C since 2023-11-14 22:13:20 UTC"
    assert sink.items[0].severity.value == "critical"


def test_pending_that_clears_before_for_sends_nothing() -> None:
    e, sink, clock = engine(FREEZER)
    feed(e, clock, -10.0)
    clock.advance(60)
    t = feed(e, clock, -20.0)
    assert [(x.previous, x.state) for x in t] == [(AlertState.PENDING, AlertState.OK)]
    clock.advance(600)
    assert e.tick() == []
    assert sink.items == []


def test_hysteresis_clears_only_below_clear_threshold() -> None:
    e, sink, clock = engine(FREEZER)
    feed(e, clock, -10.0)
    clock.advance(300)
    e.tick()
    clock.advance(10)
    assert feed(e, clock, -16.0) == []  # below above, not below clear_below: still firing
    clock.advance(10)
    t = feed(e, clock, -17.5)
    assert [x.state for x in t] == [AlertState.RESOLVED]
    assert sink.states() == [("firing", "freezer-1/t0/temperature"), ("resolved", "freezer-1/t0/temperature")]


def test_below_and_outside_range() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: fridge-range
        match: {metric: temperature, device: fridge}
        above: 8
        below: 2
        clear_below: 7
        clear_above: 3
    """)
    assert [x.state.value for x in feed(e, clock, 1.0, device="fridge")] == ["firing"]
    assert feed(e, clock, 2.5, device="fridge") == []  # inside, but not past clear_above
    assert [x.state.value for x in feed(e, clock, 3.5, device="fridge")] == ["resolved"]
    assert [x.state.value for x in feed(e, clock, 9.0, device="fridge")] == ["firing"]
    assert [x.state.value for x in feed(e, clock, 6.0, device="fridge")] == ["resolved"]


def test_keep_firing_for_holds_the_alert_after_it_clears() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: hot
        above: 30
        keep_firing_for: 2m
    """)
    feed(e, clock, 31.0)
    clock.advance(10)
    assert feed(e, clock, 20.0) == []
    clock.advance(60)
    assert feed(e, clock, 31.0) == []  # came back within the window: still the same alert
    clock.advance(10)
    feed(e, clock, 20.0)
    clock.advance(119)
    assert e.tick() == []
    clock.advance(1)
    t = e.tick()
    assert [x.state.value for x in t] == ["resolved"]
    assert t[0].at == T0 + 80 + 120


def test_other_devices_and_metrics_do_not_match() -> None:
    e, _sink, clock = engine(FREEZER)
    assert feed(e, clock, 50.0, device="oven") == []
    assert feed(e, clock, 50.0, metric="humidity") == []
    assert e.alerts == {}


def test_labels_match_and_label_templates() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: kitchen-hot
        match: {labels: {site: "kitchen*"}}
        above: 30
        labels: {team: cooks}
        message: "{{ labels.site }} {{ labels.team }} {{ series }}"
    """)
    assert feed(e, clock, 40.0, site="garage") == []
    t = feed(e, clock, 40.0, device="d2", site="kitchen-1")
    assert t[0].message == "kitchen-1 cooks d2/t0/temperature"
    assert dict(t[0].labels)["team"] == "cooks"


def test_transition_ids_are_deterministic() -> None:
    a, _, ca = engine(FREEZER)
    b, _, cb = engine(FREEZER)
    ids = []
    for e, c in ((a, ca), (b, cb)):
        feed(e, c, -10.0)
        c.advance(400)
        ids.append([t.id for t in e.tick()])
    assert ids[0] == ids[1] and len(ids[0]) == 1
