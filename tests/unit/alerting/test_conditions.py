"""Rate, no data, aggregate, anomaly, device status, compound and cross-series conditions, on a manual clock."""

from __future__ import annotations

import pytest

from alerting.conditions.status import SETTLE
from alerting.ruletest import parse_values
from tests.support.engine import T0, engine, feed


def states(ts: list) -> list[str]:  # type: ignore[type-arg]
    return [t.state.value for t in ts]


def test_rate_of_change_per_minute() -> None:
    e, sink, clock = engine("""
    rules:
      - name: heating-fast
        rate: {window: 5m, above: 2}
    """)
    for v in (20.0, 21.0, 22.0):  # 1 °C per minute
        assert feed(e, clock, v) == []
        clock.advance(60)
    assert states(feed(e, clock, 30.0)) == ["firing"]  # 10 °C over the last 3 minutes: 3.33/min
    t = sink.items[0]
    assert t.value == pytest.approx(10 / 3)
    clock.advance(300)
    feed(e, clock, 30.0)
    clock.advance(60)
    assert states(feed(e, clock, 30.5)) == ["resolved"]


def test_nodata_fires_with_its_own_pending_period_and_no_message() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: silent
        nodata: 10m
        for: 2m
        message: "{{ device }} silent for {{ value | duration }}"
    """)
    feed(e, clock, 1.0)
    clock.advance(600)
    assert states(e.tick()) == ["pending"]
    clock.advance(119)
    assert e.tick() == []
    clock.advance(1)
    fired = e.tick()
    assert states(fired) == ["firing"] and fired[0].at == T0 + 720
    assert fired[0].message == "freezer-1 silent for 12m"
    clock.advance(5)
    assert states(feed(e, clock, 1.0)) == ["resolved"]


@pytest.mark.parametrize("phase", range(4))
def test_nodata_of_a_time_not_exact_in_binary_fires_at_its_due_time(phase: int) -> None:
    # 1.3 s is not exact in binary: at the timer (last seen + 1.3), now - last seen is a hair short of it
    e, sink, clock = engine("rules:\n  - {name: quiet, nodata: 1.3s}\n")
    clock.advance(phase * 2.0 ** -22)
    feed(e, clock, -18.0)
    for _ in range(20):
        clock.advance(0.1)
        e.tick()
    assert states(sink.items) == ["firing"]


def test_nodata_data_returning_during_pending_sends_nothing() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: silent, nodata: 10m, for: 2m}
    """)
    feed(e, clock, 1.0)
    clock.advance(660)
    e.tick()
    assert states(feed(e, clock, 1.0)) == ["ok"]
    assert sink.items == []


def test_nodata_ignores_series_never_seen_but_watches_declared_ones() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: silent
        match: {device: "freezer-*"}
        nodata: 10m
        series: [freezer-9/t0/temperature]
    """)
    clock.advance(3600)
    fired = e.tick()
    # only the declared series: no alert storm for series that never existed
    assert [(t.state.value, t.series) for t in fired] == [("firing", "freezer-9/t0/temperature")]
    assert fired[0].at == T0 + 600


def test_aggregate_over_window_slides_with_time() -> None:
    e, sink, clock = engine("""
    rules:
      - name: avg-warm
        aggregate: {fn: avg, window: 10m, above: 5}
      - name: p90-warm
        aggregate: {fn: p90, window: 10m, above: 8}
    """)
    for v in (4.0, 4.0, 10.0):
        feed(e, clock, v)
        clock.advance(60)
    assert [t.rule for t in sink.items] == ["avg-warm", "p90-warm"]  # avg 6 > 5, p90 8.8 > 8
    assert sink.items[0].value == pytest.approx(6.0)
    assert sink.items[1].value == pytest.approx(8.8)
    e2, sink2, clock2 = engine("""
    rules:
      - {name: p90-warm, aggregate: {fn: p90, window: 10m, above: 8}}
    """)
    for v in [4.0] * 9 + [10.0]:
        feed(e2, clock2, v)
        clock2.advance(30)
    assert sink2.items == []  # p90 of nine 4s and one 10 is 4.6
    for _ in range(3):
        feed(e2, clock2, 10.0)
        clock2.advance(30)
    assert states(sink2.items) == ["firing"]


def test_aggregate_resolves_when_samples_leave_the_window_without_a_message() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: max-high, aggregate: {fn: max, window: 5m, above: 8}}
    """)
    feed(e, clock, 10.0)
    clock.advance(60)
    feed(e, clock, 1.0)
    assert states(sink.items) == ["firing"]
    clock.advance(300)
    e.tick()
    assert states(sink.items) == ["firing", "resolved"]
    assert sink.items[1].at == T0 + 300  # the 10 left the 5m window at exactly 5m


@pytest.mark.parametrize("method", ["zscore", "ewma", "mad"])
def test_anomaly_waits_for_warmup_then_fires_on_an_outlier(method: str) -> None:
    rules = f"""
    rules:
      - name: odd
        anomaly: {{method: {method}, window: 1h, threshold: 4, warmup: 10}}
    """
    early, _, clock = engine(rules)
    for i in range(5):
        feed(early, clock, 20.0 + (i % 3) * 0.5)
        clock.advance(10)
    assert feed(early, clock, 100.0) == []  # an outlier before warm-up says nothing
    e, _sink, clock = engine(rules)
    for i in range(30):
        assert feed(e, clock, 20.0 + (i % 3) * 0.5) == []
        clock.advance(10)
    assert states(feed(e, clock, 35.0)) == ["firing"]
    clock.advance(10)
    assert states(feed(e, clock, 20.5)) == ["resolved"]


def test_device_status_offline() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: device-offline
        offline: true
        match: {device: "freezer-*"}
        for: 1m
        message: "{{ device }} went offline"
    """)
    assert e.on_status("oven", False) == []
    assert e.on_status("freezer-1", False) == []  # a status counts once it has stood SETTLE seconds
    clock.advance(SETTLE)
    pending = e.tick()
    assert states(pending) == ["pending"]
    clock.advance(60 - SETTLE)  # 'for' counts from when the status came
    fired = e.tick()
    assert states(fired) == ["firing"] and fired[0].series == "freezer-1/device/status"
    assert fired[0].message == "freezer-1 went offline"
    assert states(e.on_status("freezer-1", True)) == ["resolved"]


def test_compound_all_and_any_on_the_same_series() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: hot-and-rising
        all:
          - {above: 30}
          - {rate: {window: 5m, above: 1}}
      - name: extreme
        any: [{above: 50}, {below: -40}]
    """)
    feed(e, clock, 31.0)
    clock.advance(60)
    assert feed(e, clock, 31.0) == []  # above but not rising
    clock.advance(60)
    assert [t.rule for t in feed(e, clock, 35.0)] == ["hot-and-rising"]
    assert [t.rule for t in feed(e, clock, -45.0)] == ["hot-and-rising", "extreme"]
    assert [t.state.value for t in e.alerts.values()] == ["resolved", "firing"]


def test_difference_of_two_sensors() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: heat-exchanger
        difference: {a: boiler/supply/temperature, b: boiler/return/temperature}
        above: 25
        clear_below: 20
        message: "supply - return = {{ value }}"
    """)
    assert feed(e, clock, 70.0, device="boiler", sensor="supply") == []  # return unknown yet
    assert feed(e, clock, 50.0, device="boiler", sensor="return") == []
    fired = feed(e, clock, 40.0, device="boiler", sensor="return")
    assert states(fired) == ["firing"]
    assert fired[0].series == "boiler/supply/temperature"
    assert fired[0].message == "supply - return = 30.0"
    assert feed(e, clock, 48.0, device="boiler", sensor="return") == []  # 22: above clear_below
    assert states(feed(e, clock, 51.0, device="boiler", sensor="return")) == ["resolved"]


def test_compound_across_series() -> None:
    e, _sink, clock = engine("""
    rules:
      - name: door-open-and-warm
        all:
          - {series: cold-room/door/contact, above: 0.5}
          - {series: cold-room/t0/temperature, above: 8}
    """)
    feed(e, clock, 10.0, device="cold-room", sensor="t0")
    assert feed(e, clock, 0.0, device="cold-room", sensor="door", metric="contact") == []
    fired = feed(e, clock, 1.0, device="cold-room", sensor="door", metric="contact")
    assert states(fired) == ["firing"]


def test_parse_values_notation() -> None:
    assert parse_values("1 2x3 _ 0+5x2 online") == [1.0, 2.0, 2.0, 2.0, None, 0.0, 5.0, 10.0, "online"]
    with pytest.raises(ValueError, match="banana"):
        parse_values("1 banana")
