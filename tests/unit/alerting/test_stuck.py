"""stuck: the value does not move while readings keep arriving, unless the siblings are as still; manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rules import RulesError, load_rules_text
from alerting.state import StateDB
from tests.support.engine import T0, engine, feed

FIXED = """
rules:
  - {name: stuck, stuck: {after: 30m}}
"""


def minutes(e, clock, n: int, **series: object) -> list:  # type: ignore[no-untyped-def, type-arg]
    """``n`` minutes of readings, one a minute per series: ``name=(device, sensor, metric, f(i), labels)``."""
    out = []
    for i in range(n):
        for device, sensor, metric, value, labels in series.values():  # type: ignore[misc]
            out += feed(e, clock, float(value(i)), device, sensor, metric, **labels)
        clock.advance(60)
    return out


def test_a_stuck_sensor_fires_once_and_says_since_when() -> None:
    e, sink, clock = engine(FIXED)
    minutes(e, clock, 180, t0=("freezer-2", "t0", "temperature", lambda i: -18.2, {}),
            t1=("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 10, {}))
    assert [(t.state.value, t.series, t.at) for t in sink.items] == [
        ("firing", "freezer-2/t0/temperature", T0 + 31 * 60)]  # the first reading past 30m, once
    assert sink.items[0].message == "freezer-2/t0 has read -18.2 °C unchanged since 2023-11-14 22:13:20 UTC"
    resolved = feed(e, clock, -17.5, "freezer-2", "t0")
    assert [t.state.value for t in resolved] == ["resolved"]
    assert resolved[0].message == "freezer-2/t0 changes again (-17.5 °C)"


def test_a_stable_night_with_every_sibling_as_still_does_not_fire() -> None:
    e, sink, clock = engine(FIXED)
    minutes(e, clock, 8 * 60, t=("greenhouse", "air", "temperature", lambda i: 18.0, {}),
            h=("greenhouse", "air", "humidity", lambda i: 71.0, {}),
            soil=("greenhouse", "soil", "temperature", lambda i: 16.0, {}))
    assert sink.items == []


def test_siblings_by_room_label_vouch_across_devices() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: stuck, stuck: {after: 30m, siblings: "label:room"}}
    """)
    minutes(e, clock, 120, a=("pi-1", "t0", "temperature", lambda i: 18.0, {"room": "greenhouse"}),
            b=("pi-2", "t0", "temperature", lambda i: 18.5, {"room": "greenhouse"}),
            c=("pi-3", "t0", "temperature", lambda i: 20 + i % 2, {"room": "office"}))
    assert sink.items == []  # the office moves, but it is not in the greenhouse
    minutes(e, clock, 40, a=("pi-1", "t0", "temperature", lambda i: 18.0, {"room": "greenhouse"}),
            b=("pi-2", "t0", "temperature", lambda i: 18.5 + i / 10, {"room": "greenhouse"}))
    assert [(t.state.value, t.series) for t in sink.items] == [("firing", "pi-1/t0/temperature")]


def test_a_solar_sensor_in_the_dark_with_a_flat_sibling_does_not_fire() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: stuck, match: {metric: illuminance}, stuck: {after: 1h}}
    """)
    minutes(e, clock, 10 * 60, lux=("roof", "pyranometer", "illuminance", lambda i: 0.0, {}),
            panel=("roof", "panel", "power", lambda i: 0.0, {}))
    assert sink.items == []


def test_readings_that_stop_are_stale_not_stuck() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: stuck, match: {sensor: t0}, stuck: {after: 30m}}
      - {name: stale, match: {sensor: t0}, stale: {after: 5m}}
    """)
    minutes(e, clock, 20, t0=("freezer-2", "t0", "temperature", lambda i: -18.0, {}),
            t1=("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 10, {}))
    minutes(e, clock, 5 * 60, t1=("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 10, {}))
    e.tick()
    assert [(t.rule, t.state.value) for t in sink.items] == [("stale", "firing")]


def test_learned_limit_is_factor_times_the_longest_run_of_the_warmup() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: stuck, match: {sensor: t0}, stuck: {factor: 4, warmup: 2h, min: 10m}}
    """)
    moving = ("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 10, {})
    # warm-up: the value holds 10 minutes at most (steps every 10 minutes): the limit is 40m
    minutes(e, clock, 121, t0=("freezer-2", "t0", "temperature", lambda i: -18.0 - (i // 10) % 2, {}), t1=moving)
    minutes(e, clock, 39, t0=("freezer-2", "t0", "temperature", lambda i: -17.0, {}), t1=moving)
    minutes(e, clock, 39, t0=("freezer-2", "t0", "temperature", lambda i: -16.0, {}), t1=moving)
    assert sink.items == []  # 38 minutes flat, twice: within what it has seen
    start = clock.now()
    minutes(e, clock, 45, t0=("freezer-2", "t0", "temperature", lambda i: -15.0, {}), t1=moving)
    assert [(t.state.value, t.at) for t in sink.items] == [("firing", start + 41 * 60)]


def test_a_band_tolerates_the_last_digit_flickering() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: stuck, match: {sensor: t0}, stuck: {after: 30m, band: 0.1}}
    """)
    minutes(e, clock, 40, t0=("freezer-2", "t0", "temperature", lambda i: -18.0 + (i % 2) / 10, {}),
            t1=("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 2, {}))
    assert [t.state.value for t in sink.items] == ["firing"]


def test_a_firing_alert_survives_a_restart_until_the_value_moves(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "alerts.db")
    e, sink, clock = engine(FIXED, state=db)
    moving = ("freezer-2", "t1", "temperature", lambda i: -18.0 - (i % 3) / 10, {})
    minutes(e, clock, 40, t0=("freezer-2", "t0", "temperature", lambda i: -18.0, {}), t1=moving)
    assert [t.state.value for t in sink.items] == ["firing"]
    e2, sink2, _ = engine(FIXED, clock=clock, state=db)
    minutes(e2, clock, 10, t0=("freezer-2", "t0", "temperature", lambda i: -18.0, {}), t1=moving)
    assert sink2.items == [] and e2.alerts["stuck/freezer-2/t0/temperature"].state.value == "firing"
    assert [t.state.value for t in feed(e2, clock, -17.0, "freezer-2", "t0")] == ["resolved"]


@pytest.mark.parametrize(("spec", "words"), [
    ("{after: 2h, factor: 4}", "stuck needs after"),
    ("{band: 0.1}", "stuck needs after"),
    ("{factor: 0.5}", "stuck factor must be more than 1"),
    ("{after: 2h, siblings: room}", "siblings are device, label:<name>"),
    ("{after: 2h, band: -1}", "greater than or equal to 0"),
])
def test_bad_specs_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(RulesError) as err:
        load_rules_text(f"rules:\n  - {{name: s, stuck: {spec}}}\n")
    assert words in str(err.value.issues)
