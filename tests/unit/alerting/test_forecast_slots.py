"""Forecast on its slots (issue 16), on a manual clock: a defrost heater run that levels off below the threshold
does not fire, a compressor that stopped does (with the crossing time) and resolves when it starts again, the
state of a series is a few hundred bytes, and a restart refills the slots from the store."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from alerting.conditions import Forecast
from alerting.conditions._base import SeriesData
from alerting.engine import Engine
from alerting.rules import load_rules_text
from alerting.state import StateDB
from alerting.storetrigger import seed_windows
from tests.support.engine import T0, Recorder, engine, ev, feed
from vigil.core.stores import MemoryStore

RULE = """
rules:
  - name: freezer-warming
    match: {metric: temperature}
    forecast: {above: -12, within: 20m, window: 30m}
"""
MIN = 60.0


def run(values: np.ndarray, step: float) -> list[tuple[float, str, str, float | None]]:
    """Feed one reading every ``step`` seconds; every transition as (minute, state, message, value)."""
    e, _sink, clock = engine(RULE)
    out = []
    for v in values:
        out += [((t.at - T0) / MIN, t.state.value, t.message, t.value) for t in feed(e, clock, float(v))]
        clock.advance(step)
    return out


def defrost(rise: int, peak: float, step: float, sd: float, seed: int) -> np.ndarray:
    """-20 °C for 40 minutes, a heater run warming to ``peak`` over ``rise`` minutes (a half sine: fast, then
    slower toward the top), cooling as long, then -20 °C for 30 minutes; noise of ``sd``, 0.01 °C resolution."""
    m = np.arange(0, (40 + 2 * rise + 30) * MIN, step) / MIN
    v = np.full(len(m), -20.0)
    on = (m >= 40) & (m < 40 + 2 * rise)
    v[on] = -20 + (peak + 20) * np.sin(math.pi * (m[on] - 40) / (2 * rise))
    return np.round(v + np.random.default_rng(seed).normal(0.0, sd, len(m)), 2)


def compressor_off(step: float, sd: float, seed: int, back_on: float = math.inf) -> np.ndarray:
    """-20 °C for 40 minutes, then +0.3 °C/min (-12 is reached at 66m40s) until ``back_on``, then -0.5 °C/min."""
    m = np.arange(0, 100 * MIN, step) / MIN
    warm = -20 + 0.3 * np.clip(np.minimum(m, back_on) - 40, 0, None)
    v = np.where(m > back_on, np.maximum(warm - 0.5 * (m - back_on), -20), warm)
    return np.round(v + np.random.default_rng(seed).normal(0.0, sd, len(m)), 2)


@pytest.mark.parametrize("peak", [-14.0, -13.0])
@pytest.mark.parametrize("rise", [10, 15, 20])
@pytest.mark.parametrize("step,sd,seeds", [(60.0, 0.0, 1), (10.0, 0.15, 3)])
def test_a_defrost_peaking_1_or_2_degrees_below_the_threshold_does_not_fire(
        rise: int, peak: float, step: float, sd: float, seeds: int) -> None:
    for seed in range(seeds):
        assert run(defrost(rise, peak, step, sd, seed), step) == [], (rise, peak, step, seed)


@pytest.mark.parametrize("step,sd", [(60.0, 0.0), (10.0, 0.15)])
def test_a_compressor_that_stopped_fires_with_the_crossing_time_and_resolves_when_it_starts_again(
        step: float, sd: float) -> None:
    out = run(compressor_off(step, sd, seed=5, back_on=64.0), step)
    assert [s for _, s, _, _ in out] == ["firing", "resolved"]
    at, _, message, eta = out[0]
    assert eta is not None and at + eta / MIN == pytest.approx(40 + 8 / 0.3, abs=2)  # the real crossing
    assert at <= 40 + 8 / 0.3 - 8  # at least 8 minutes ahead
    m = re.fullmatch(r"freezer-1/t0 will reach -12\.0 °C in about (\d+) min at the current rate \(\+0\.(\d+) °C/min\)",
                     message)
    assert m is not None, message
    assert abs(at + int(m.group(1)) - (40 + 8 / 0.3)) <= 2 and m.group(2) in ("29", "3", "31")
    assert out[1][0] > 64  # when it cools again
    assert "is no longer heading for -12.0 °C" in out[1][2]


def test_the_state_of_a_series_is_a_few_hundred_bytes_and_no_samples_are_kept() -> None:
    e, _sink, clock = engine(RULE)
    for v in compressor_off(10.0, 0.15, seed=1)[:300]:
        feed(e, clock, float(v))
        clock.advance(10.0)
    data = e.series["freezer-1/t0/temperature"]
    assert data.samples is None and data.keep == 0
    assert data.memo is not None and len(data.memo) * data.memo.itemsize == 296  # 74 float32 cells


def test_a_late_or_repeated_reading_changes_nothing() -> None:
    cond = Forecast(-12.0, True, 1200.0, 1800.0, 10)
    series = SeriesData("f/t0/temperature", "f", "t0", "temperature")
    from alerting.conditions import Ctx
    for k in range(200):
        series.add(T0 + 10 * k, -20 + 0.3 * k / 6, T0 + 10 * k)
        cond.check(Ctx(T0 + 10 * k, series, lambda _sid: None), False)
    before = bytes(series.memo or b"")
    cond.check(Ctx(T0 + 2000, series, lambda _sid: None), False)  # the same reading again (a timer)
    series.add(T0 + 100, 50.0, T0 + 2000)  # a very late reading, 30 minutes back
    cond.check(Ctx(T0 + 2000, series, lambda _sid: None), False)
    assert bytes(series.memo or b"")[:-7 * 4] == before[:-7 * 4]  # the slots did not move (the verdict may)


async def _restart(tmp_path: Path, values: np.ndarray, cut: int, seed_after_first: bool) -> list[tuple[float, str]]:
    rules, _ = load_rules_text(RULE, "t.yaml")
    store, db = MemoryStore(), StateDB(tmp_path / "alerts.db")
    e, _sink, clock = engine(RULE, state=db)
    for x in values[:cut]:
        event = ev(float(x), clock.now())
        store.write([event])
        e.on_event(event)
        clock.advance(10.0)
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    e2 = Engine(rules, state=db2, sink=Recorder(), clock=clock)
    out: list[tuple[float, str]] = []
    rest = list(values[cut:])
    if seed_after_first:  # the refill races with live readings: one arrives before it
        event = ev(float(rest.pop(0)), clock.now())
        store.write([event])
        out += [((t.at - T0) / MIN, t.state.value) for t in e2.on_event(event)]
        clock.advance(10.0)
    await seed_windows(e2, store, clock)
    assert e2.series["freezer-1/t0/temperature"].seeded is not None
    for x in rest:
        out += [((t.at - T0) / MIN, t.state.value) for t in feed(e2, clock, float(x))]
        clock.advance(10.0)
    db2.close()
    return out


@pytest.mark.parametrize("seed_after_first", [False, True])
async def test_a_restart_refills_the_slots_from_the_store(tmp_path: Path, seed_after_first: bool) -> None:
    values = compressor_off(10.0, 0.15, seed=2)
    fired = next(at for at, s, _, _ in run(values, 10.0) if s == "firing")
    cut = int((fired - 4) * MIN / 10.0)  # stopped 4 minutes before it would fire
    out = await _restart(tmp_path, values, cut, seed_after_first)
    assert out[:1] == [(pytest.approx(fired, abs=1.0), "firing")]
    # without the refill it could not fire so soon: half the window must be seen first
    e, _sink, clock = engine(RULE)
    clock.set(T0 + cut * 10.0)
    late = []
    for x in values[cut:]:
        late += [(t.at - T0) / MIN for t in feed(e, clock, float(x))]
        clock.advance(10.0)
    assert not late or late[0] >= fired + 10


def test_the_refilled_history_is_dropped_once_older_than_its_span() -> None:
    series = SeriesData("f/t0/temperature", "f", "t0", "temperature")
    series.seed([(T0 - 600 + 10 * k, -20.0) for k in range(60)])  # 10 minutes, keep 0: only for summaries
    assert series.samples is None and series.seeded is not None
    series.add(T0 + 300, -20.0, T0 + 300)
    assert series.seeded is not None
    series.add(T0 + 700, -20.0, T0 + 700)
    assert series.seeded is None


@pytest.mark.parametrize("extreme", [1e15, -1e15, 3.4e38, 1e300])
def test_hostile_values_beyond_float32_do_not_break_it(extreme: float) -> None:
    """Readings the intake lets through (up to its bound) or a caller hands over: the slots saturate to inf,
    the forecast says nothing or fires, it never raises."""
    e, _sink, clock = engine(RULE)
    for k in range(400):
        feed(e, clock, extreme if k % 7 == 3 else -20 + 0.3 * k / 6)
        clock.advance(10.0)
    data = e.series["freezer-1/t0/temperature"]
    assert data.memo is not None and len(data.memo) == 37
