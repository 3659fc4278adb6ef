"""Drift against siblings, on a manual clock: two sensors that used to agree and slowly part fire one alert
naming both; a constant offset, a door near one sensor, a day/night cycle both follow, a lagging sensor and
a sensor in the sun stay quiet; hysteresis, three sensors, restarts (hours refilled from the store) and
hostile input."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from alerting.conditions import Drift
from alerting.conditions.drift import Hours
from alerting.engine import Engine
from alerting.rules import RulesError, load_rules_text
from alerting.state import StateDB
from alerting.storetrigger import seed_windows, wants_store
from alerting.transition import AlertState
from tests.support.engine import T0, Recorder, engine, ev
from vigil.core.clock import ManualClock
from vigil.core.settings import StoreSettings
from vigil.core.stores import MemoryStore

DAY, HOUR = 86400.0, 3600.0
RULE = """
rules:
  - name: drift
    match: {metric: temperature}
    drift: {max: 1.0}               # over: 7d, siblings: [device, "label:room"]
"""

Signal = Callable[[float], float]  # days since T0 -> °C


def cycle(d: float) -> float:
    """A day/night cycle of +-3 °C both sensors of a room follow."""
    return 3.0 * math.sin(2 * math.pi * d)


def parting(start: float, rate: float) -> Signal:
    """0 until ``start`` days, then ``rate`` °C a day."""
    return lambda d: rate * max(0.0, d - start)


def run(sensors: dict[str, Signal], days: float = 10.0, step: float = HOUR, noise: float = 0.03,
        e: Optional[Engine] = None, clock: Optional[ManualClock] = None, start: float = 0.0,
        store: Optional[MemoryStore] = None) -> list[tuple[float, str, str, str]]:
    """Feed every sensor (device/sensor -> signal) each ``step`` from ``start`` to ``days``; the
    notifications as (days, state, series, message)."""
    if e is None:
        e, _sink, clock = engine(RULE)
    assert clock is not None
    rng = np.random.default_rng(7)
    out = []
    for i in range(round(start * DAY / step), round(days * DAY / step)):
        t = T0 + i * step
        clock.set(t)
        for name, f in sensors.items():
            device, sensor = name.split("/")
            event = ev(round(f((t - T0) / DAY) + rng.normal(0, noise), 2), t, device, sensor)
            if store is not None:
                store.write([event])
            out += [(round((x.at - T0) / DAY, 2), x.state.value, x.series, x.message) for x in e.on_event(event)]
    return out


def test_two_sensors_parting_fire_one_alert_naming_both() -> None:
    out = run({"freezer-2/t0": lambda d: -18 + cycle(d),
               "freezer-2/t1": lambda d: -18.1 + cycle(d) - parting(2, 0.2)(d)})
    assert [(s, series) for _, s, series, _ in out] == [("firing", "freezer-2/t0/temperature")]
    at, _, _, message = out[0]
    # the difference moved 1 °C from its baseline 5 days after they began to part (7d window)
    assert 6.8 < at < 7.5, at
    assert message == ("freezer-2/t0 and freezer-2/t1 used to agree within 0.1 °C and now differ by 1.1 °C "
                       "(parting at 0.2 °C/day): one of these needs calibration")


@pytest.mark.parametrize("case, sensors", [
    ("a constant offset", {"a/t0": lambda d: -18 + cycle(d), "a/t1": lambda d: -18.6 + cycle(d)}),
    ("a day/night cycle both follow", {"a/t0": lambda d: 20 + 4 * cycle(d), "a/t1": lambda d: 20.2 + 4 * cycle(d)}),
    ("a sensor lagging an hour behind", {"a/t0": lambda d: 20 + cycle(d), "a/t1": lambda d: 20 + cycle(d - 1 / 24)}),
    ("a sensor in the afternoon sun", {"a/t0": lambda d: 20 + cycle(d),
                                       "a/t1": lambda d: 20 + cycle(d) + 1.5 * max(0.0, math.sin(2 * math.pi * d))}),
    ("a slow shared warming", {"a/t0": lambda d: 15 + 0.5 * d, "a/t1": lambda d: 15.2 + 0.5 * d}),
])
def test_no_alarm_when_the_difference_does_not_move(case: str, sensors: dict[str, Signal]) -> None:
    assert run(sensors, days=12) == [], case


def test_a_door_near_one_sensor_is_no_drift() -> None:
    """Every few hours the door next to t0 is open for 10 minutes (+8 °C): the hourly medians ignore it."""
    def door(d: float) -> float:
        return 8.0 if (d * 24 * 6) % 23 < 1 else 0.0
    out = run({"cold/t0": lambda d: -18 + door(d), "cold/t1": lambda d: -18.3}, days=9, step=600)
    assert out == []


def test_unrelated_series_are_not_siblings() -> None:
    """Different devices without a shared room label are not compared: nothing to say."""
    out = run({"a/t0": lambda d: -18.0, "b/t0": lambda d: -18 + 0.5 * d})
    assert out == []


def test_a_room_label_makes_siblings_across_devices() -> None:
    e, _sink, clock = engine(RULE)
    rng = np.random.default_rng(3)
    out = []
    for i in range(int(10 * DAY / HOUR)):
        t = T0 + i * HOUR
        clock.set(t)
        d = i / 24
        for device, v in (("a", 21.0), ("b", 21.2 + 0.3 * d)):
            out += e.on_event(ev(v + rng.normal(0, 0.03), t, device, "t0", room="lab"))
    assert [(t.state.value, t.series) for t in out] == [("firing", "a/t0/temperature")]
    assert "a/t0 and b/t0 used to agree within 0.4 °C and now differ by 1.4 °C" in out[0].message


def test_it_holds_until_back_within_half_the_limit() -> None:
    e, sink, clock = engine(RULE)
    part = parting(2, 0.3)
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - part(d)}, days=8, e=e, clock=clock)
    assert sink.states() == [("firing", "f/t0/temperature")]
    rec = e.alerts["drift/f/t0/temperature"]
    assert rec.value is not None and 1.0 < rec.value < 2.0
    # corrected by 0.9 °C (still 0.7 °C or so off the baseline): holds; then recalibrated: resolves, once
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - part(8.0) + 0.9}, days=9, e=e, clock=clock, start=8)
    assert sink.states() == [("firing", "f/t0/temperature")]
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.0}, days=10, e=e, clock=clock, start=9)
    assert sink.states() == [("firing", "f/t0/temperature"), ("resolved", "f/t0/temperature")]
    assert sink.items[-1].message == "f/t0 and f/t1 agree again: they differ by 0.4 °C (0.1 °C before they parted)"


def test_of_three_sensors_the_one_that_parts_is_named() -> None:
    out = run({"room/t0": lambda d: 20 + cycle(d), "room/t1": lambda d: 20.1 + cycle(d),
               "room/t2": lambda d: 19.9 + cycle(d) + parting(1, 0.3)(d)})
    assert [(s, series) for _, s, series, _ in out] == [("firing", "room/t2/temperature")]
    assert out[0][3].startswith("room/t2 and its siblings (room/t0, room/t1) used to agree within 0.1 °C")
    assert out[0][3].endswith(": room/t2 needs calibration")


def test_for_delays_it_like_any_rule() -> None:
    e, _sink, clock = engine(RULE.replace("drift: {max: 1.0}", "drift: {max: 1.0}\n    for: 6h"))
    out = run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - parting(2, 0.3)(d)}, days=8, e=e, clock=clock)
    fired = [at for at, s, _, _ in out if s == "firing"]
    plain = [at for at, s, _, _ in run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - parting(2, 0.3)(d)},
                                        days=8) if s == "firing"]
    assert len(fired) == 1 and fired[0] == pytest.approx(plain[0] + 0.25, abs=0.05)


async def test_a_restart_refills_the_hours_from_the_store_and_fires_on_time(tmp_path: Path) -> None:
    sensors = {"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - parting(2, 0.25)(d)}
    fired = [at for at, s, _, _ in run(sensors, days=10) if s == "firing"]
    assert len(fired) == 1
    rules, _ = load_rules_text(RULE, "t.yaml")
    store, db = MemoryStore(), StateDB(tmp_path / "alerts.db")
    e, _sink, clock = engine(RULE, state=db)
    assert run(sensors, days=fired[0] - 0.5, e=e, clock=clock, store=store) == []
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    e2 = Engine(rules, state=db2, sink=Recorder(), clock=clock)
    await seed_windows(e2, store, clock)
    out = run(sensors, days=10, e=e2, clock=clock, start=fired[0] - 0.5 + 1 / 24)
    db2.close()
    # the store's hourly means instead of medians: the same day, give or take a few hours
    assert [s for _, s, _, _ in out] == ["firing"]
    assert out[0][0] == pytest.approx(fired[0], abs=0.2)


async def test_a_firing_alert_stays_firing_across_a_restart_and_is_not_told_again(tmp_path: Path) -> None:
    sensors = {"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - parting(2, 0.25)(d)}
    rules, _ = load_rules_text(RULE, "t.yaml")
    store, db = MemoryStore(), StateDB(tmp_path / "alerts.db")
    e, sink, clock = engine(RULE, state=db)
    run(sensors, days=8, e=e, clock=clock, store=store)
    assert sink.states() == [("firing", "f/t0/temperature")]
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    sink2 = Recorder()
    e2 = Engine(rules, state=db2, sink=sink2, clock=clock)
    await seed_windows(e2, store, clock)
    run(sensors, days=9, e=e2, clock=clock, start=8 + 1 / 24)
    assert sink2.items == [] and e2.alerts["drift/f/t0/temperature"].state == AlertState.FIRING
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.0}, days=10, e=e2, clock=clock, start=9)
    assert sink2.states() == [("resolved", "f/t0/temperature")]
    db2.close()


async def test_a_restart_long_after_it_fired_keeps_the_baseline_of_when_it_fired(tmp_path: Path) -> None:
    """Fired at day 6.5, restarted at day 16: the refilled 7 days hold only the parted state, yet the
    baseline is that of before it fired (from the store), so a recalibration resolves it."""
    sensors = {"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.1 - min(1.5, parting(2, 0.3)(d))}
    rules, _ = load_rules_text(RULE, "t.yaml")
    store, db = MemoryStore(), StateDB(tmp_path / "alerts.db")
    e, sink, clock = engine(RULE, state=db)
    run(sensors, days=16, e=e, clock=clock, store=store)
    assert sink.states() == [("firing", "f/t0/temperature")]
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    sink2 = Recorder()
    e2 = Engine(rules, state=db2, sink=sink2, clock=clock)
    await seed_windows(e2, store, clock)
    assert e2.scratch["drift/f/t0/temperature"]["drift_base"] == pytest.approx(0.1, abs=0.05)
    run(sensors, days=17, e=e2, clock=clock, start=16 + 1 / 24)
    assert sink2.items == []
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.1}, days=18, e=e2, clock=clock, start=17)
    assert sink2.states() == [("resolved", "f/t0/temperature")]
    db2.close()


def test_a_restart_without_a_store_holds_the_alert_until_a_recalibration_shows(tmp_path: Path) -> None:
    sensors = {"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.1 - min(1.5, parting(2, 0.3)(d))}
    rules, _ = load_rules_text(RULE, "t.yaml")
    db = StateDB(tmp_path / "alerts.db")
    e, sink, clock = engine(RULE, state=db)
    run(sensors, days=8, e=e, clock=clock)
    assert sink.states() == [("firing", "f/t0/temperature")]
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    sink2 = Recorder()
    e2 = Engine(rules, state=db2, sink=sink2, clock=clock)
    run(sensors, days=16, e=e2, clock=clock, start=8 + 1 / 24)  # learns the (parted) hours again: holds
    assert sink2.items == [] and e2.alerts["drift/f/t0/temperature"].state == AlertState.FIRING
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.1}, days=17, e=e2, clock=clock, start=16)
    assert sink2.states() == [("resolved", "f/t0/temperature")]
    assert sink2.items[0].message.startswith("f/t0 and f/t1 agree again: they differ by 0.")
    assert "before they parted" not in sink2.items[0].message  # that baseline was not known
    db2.close()


def test_a_rules_reload_keeps_the_hours_and_does_not_tell_it_again() -> None:
    e, sink, clock = engine(RULE)
    sensors = {"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - parting(2, 0.3)(d)}
    run(sensors, days=8, e=e, clock=clock)
    assert sink.states() == [("firing", "f/t0/temperature")]
    rules, _ = load_rules_text(RULE, "t.yaml")
    e.reload(rules)
    run(sensors, days=9, e=e, clock=clock, start=8)
    assert sink.states() == [("firing", "f/t0/temperature")]
    assert e.alerts["drift/f/t0/temperature"].state == AlertState.FIRING


def test_without_a_restart_nothing_is_fired_from_too_little_history() -> None:
    """Two days are not enough: quiet (half of `over` at least, 24 hours at least)."""
    assert run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18 - 2 * d}, days=3) == []


def test_a_store_is_wanted_to_refill_drift_rules(tmp_path: Path) -> None:
    rules, _ = load_rules_text(RULE, "t.yaml")
    assert wants_store(StoreSettings(url=f"sqlite://{tmp_path}/none.db"), rules) is False  # not made: never
    assert wants_store(StoreSettings(url="influxdb1://127.0.0.1:8086/vigil"), rules) is True


def test_memory_stays_small_per_series() -> None:
    e, _sink, clock = engine(RULE)
    run({"f/t0": lambda d: -18.0, "f/t1": lambda d: -18.1}, days=10, step=60.0, e=e, clock=clock)
    hours = e.scratch["drift/f/t0/temperature"]["drift_hours"]
    assert isinstance(hours, Hours)
    size = sys.getsizeof(hours) + sys.getsizeof(hours.values) + sys.getsizeof(hours.buf)
    assert len(hours.values) == 168 and len(hours.buf) <= 12
    assert size < 1200, size
    assert e.series["f/t0/temperature"].samples is None  # no raw readings kept for it


# -- hostile input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("drift, words", [
    ("{max: 0}", "greater than 0"),
    ("{max: -1}", "greater than 0"),
    ("{max: .nan}", "finite"),
    ("{max: .inf}", "finite"),
    ("{max: '1 °C'}", "number"),
    ("{over: 1h}", "2d to 90d"),
    ("{over: 1000d}", "2d to 90d"),
    ("{over: -7d}", "expected a duration"),
    ("{siblings: none}", "needs siblings"),
    ("{siblings: kitchen}", "siblings are device"),
    ("{siblings: ['label:']}", "siblings are device"),
    ("{limit: 1}", "limit"),
    ("1.0", "expected a mapping"),
])
def test_bad_drift_specs_are_refused_with_a_sentence(drift: str, words: str) -> None:
    with pytest.raises(RulesError) as err:
        load_rules_text(f"rules:\n  - name: d\n    drift: {drift}\n", "t.yaml")
    assert words in str(err.value), str(err.value)


def test_drift_and_another_condition_in_one_rule_are_refused() -> None:
    with pytest.raises(RulesError, match="drift"):
        load_rules_text("rules:\n  - name: d\n    drift: {}\n    above: 3\n", "t.yaml")


def test_hostile_readings_do_not_break_the_hours() -> None:
    h = Hours()
    assert not h.add(T0, math.nan, 168) and not h.add(T0, math.inf, 168)
    h.add(T0, 1e6 + 0.25, 168)
    assert not h.add(T0 + 10, 1e300, 168)        # beyond float32 around the first value: ignored
    assert not h.add(T0 - 7200, 5.0, 168)        # a late reading: ignored
    assert h.add(T0 + HOUR, 1e6, 168)            # completes the hour
    assert h.span(int(T0 // HOUR), int(T0 // HOUR) + 1)[0] == 1e6 + 0.25   # decimals kept near 1e6
    h.add(T0 + 400 * DAY, 1.0, 168)              # a clock jump of a year: a bounded array, not 9,600 hours
    assert len(h.values) <= 168


def test_a_flood_of_readings_in_one_hour_keeps_a_bounded_buffer() -> None:
    h = Hours()
    for i in range(10_000):
        h.add(T0 + i * 0.3, -18.0, 168)
    assert len(h.buf) <= 12


def test_a_drift_condition_is_built_from_the_spec() -> None:
    rules, _ = load_rules_text("rules:\n  - name: d\n    drift: {max: 0.5, over: 14d, siblings: label:room}\n", "t")
    from alerting.conditions import build_condition

    cond = build_condition(rules.rules[0].spec)
    assert isinstance(cond, Drift)
    assert (cond.max, cond.over, cond.groups, cond.window) == (0.5, 14 * DAY, ["label:room"], 0.0)


# -- vigil rules check / test / backtest ---------------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def test_the_docs_example_checks_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.app.cli import main

    assert main(["rules", "check", str(DATA / "drift.yaml")]) == 0
    assert "1 rules, 1 receivers, 0 warnings" in capsys.readouterr().out
    code = main(["rules", "test", str(DATA / "drift_test.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 passed, 0 failed" in out
    docs = (Path(__file__).parents[3] / "docs" / "rules.md").read_text("utf-8")
    section = docs.split("### Drift: two sensors part", 1)[1]
    for name in ("drift.yaml", "drift_test.yaml"):
        assert (DATA / name).read_text("utf-8").strip() in section, name


def test_a_backtest_on_stored_history_tells_the_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.app.cli import main
    from vigil.core.stores import open_store

    url = f"sqlite:///{tmp_path}/vigil.db"
    with open_store(url) as store:
        for i in range(240):
            t = T0 + i * HOUR
            store.write([ev(-18.0, t, "freezer-2", "t0"), ev(-18.1 - 0.01 * max(0, i - 48), t, "freezer-2", "t1"),
                         ev(-18.0, t, "freezer-3", "t0"), ev(-18.6, t, "freezer-3", "t1")])
    code = main(["rules", "backtest", str(DATA / "drift.yaml"), "--store", url, "--from", str(T0),
                 "--to", str(T0 + 10 * DAY)])
    out = capsys.readouterr().out
    assert code == 0, out
    firing = [line for line in out.splitlines() if "FIRING" in line]
    assert len(firing) == 1, out
    assert "probes-part freezer-2/t0/temperature: freezer-2/t0 and freezer-2/t1 used to agree" in firing[0]
    assert "1 notification" in out, out
