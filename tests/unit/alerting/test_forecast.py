"""Forecast ("will cross X within D"), on a manual clock with synthetic series: it fires once, on time, on a
warming freezer and resolves when it cools; noise, a door opened and closed, a slow defrost: nothing."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from alerting.rules import RulesError, load_rules_text
from tests.support.engine import T0, engine, feed
from vigil.app.cli import main

RULE = """
rules:
  - name: freezer-warming
    match: {metric: temperature}
    forecast: {above: -12, within: 20m, window: 30m}
"""
STEP = 10.0  # one reading every 10 s
MIN = 60.0


def minutes(m: float) -> np.ndarray:
    return np.arange(0, m * MIN, STEP) / MIN


def run(values: np.ndarray, rule: str = RULE) -> list[tuple[float, str, str, float | None]]:
    """Feed the series; every transition as (minute, state, message, value)."""
    e, _sink, clock = engine(rule)
    out = []
    for v in values:
        for t in feed(e, clock, float(v)):
            out.append(((t.at - T0) / MIN, t.state.value, t.message, t.value))
        clock.advance(STEP)
    return out


def noise(n: int, sd: float = 0.15, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_a_warming_freezer_fires_once_with_the_crossing_time_and_resolves_when_it_cools() -> None:
    m = minutes(150)
    # -20 for 40 min, then +0.15 °C/min (crosses -12 at 93.3 min) up to -8, held 10 min, then cools 0.5 °C/min
    warm = np.minimum(-20 + 0.15 * np.clip(m - 40, 0, None), -8.0)
    v = np.where(m > 130, np.maximum(-8 - 0.5 * (m - 130), -20), warm) + noise(len(m))
    out = run(v)
    assert [s for _, s, _, _ in out] == ["firing", "resolved"]
    at, _, message, eta = out[0]
    # within 4 minutes of the truth, 20 minutes ahead (over 30 noise seeds the worst was 3.5)
    assert eta is not None and at + eta / MIN == pytest.approx(40 + 8 / 0.15, abs=4)
    assert 15 <= eta / MIN <= 20
    assert message.startswith("freezer-1/t0 will reach -12.0 °C in about ")
    assert re.search(r"at the current rate \(\+0\.1[4-6]? °C/min\)$", message), message
    assert out[1][0] > 130  # resolves once it cools again, not while it sits above the threshold
    assert "is no longer heading for -12.0 °C" in out[1][2]


def test_falling_toward_below() -> None:
    rule = RULE.replace("above: -12", "below: 40").replace("freezer-warming", "tank-cooling")
    m = minutes(80)
    v = 60 - 0.5 * np.clip(m - 30, 0, None) + noise(len(m))  # 60 °C, then loses 0.5 °C/min: 40 at 70 min
    out = run(v, rule)
    assert [s for _, s, _, _ in out] == ["firing"]
    at, _, message, eta = out[0]
    assert eta is not None and at + eta / MIN == pytest.approx(70, abs=3)
    assert "will reach 40.0 °C in about" in message and "(-0.5 °C/min)" in message


@pytest.mark.parametrize("level,sd", [(-18.0, 0.5), (-13.0, 0.5), (-12.5, 0.2)])
def test_flat_noise_never_fires(level: float, sd: float) -> None:
    assert run(level + noise(len(minutes(240)), sd, seed=3)) == []


@pytest.mark.parametrize("open_minutes", [1, 3, 6])
def test_a_door_opened_and_closed_does_not_fire(open_minutes: int) -> None:
    m = minutes(120)
    v = np.full(len(m), -18.0)
    opened = (m >= 40) & (m < 40 + open_minutes)
    v[opened] = -18 + 3 * (m[opened] - 40)  # +3 °C/min while open
    top = -18 + 3 * open_minutes
    after = m >= 40 + open_minutes
    v[after] = -18 + (top + 18) * np.exp(-(m[after] - 40 - open_minutes))  # back within a few minutes
    assert run(v + noise(len(m))) == []


@pytest.mark.parametrize("duration", [40, 60])
def test_a_slow_defrost_cycle_that_peaks_below_the_threshold_does_not_fire(duration: int) -> None:
    m = minutes(150)
    cycle = (m >= 40) & (m < 40 + duration)
    v = np.full(len(m), -20.0)
    v[cycle] = -20 + 5 * np.sin(math.pi * (m[cycle] - 40) / duration)  # up to -15, 3 °C below the threshold
    assert run(v + noise(len(m))) == []


def test_already_past_the_threshold_is_the_threshold_rules_job() -> None:
    m = minutes(60)
    assert run(-10 + 0.2 * m + noise(len(m))) == []


def test_quiet_until_the_window_holds_enough() -> None:
    m = minutes(14)  # less than half the 30m window
    assert run(-20 + 0.5 * m) == []


@pytest.mark.parametrize("body,error", [
    ("{above: -12, below: -30, within: 20m}", "exactly one of above"),
    ("{within: 20m}", "exactly one of above"),
    ("{above: -12}", "within"),
    ("{above: -12, within: 0s}", "longer than 0s"),
    ("{above: -12, within: 20m, min_samples: 2}", "min_samples"),
])
def test_spec_errors(body: str, error: str) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules_text(f"rules:\n  - name: f\n    forecast: {body}\n", "f.yaml")
    assert error in str(exc.value)


def test_the_docs_example_checks_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/rules.md, When the sensor is wrong: the rules (forecast, jump, noise) and their tests, as run by a user."""
    data = Path(__file__).parent / "data"
    assert main(["rules", "check", str(data / "forecast_jump.yaml")]) == 0
    code = main(["rules", "test", str(data / "forecast_jump_test.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 passed, 0 failed" in out


async def test_after_a_restart_the_window_refilled_from_the_store_gives_the_same_forecast(tmp_path: Path) -> None:
    from alerting.engine import Engine
    from alerting.state import StateDB
    from alerting.storetrigger import seed_windows
    from tests.support.engine import Recorder, ev
    from vigil.core.stores import MemoryStore

    m = minutes(100)
    v = -20 + 0.15 * np.clip(m - 40, 0, None) + noise(len(m))
    fired_at = next(at for at, s, _, _ in run(v) if s == "firing")
    cut = int((fired_at - 5) * MIN / STEP)  # the engine stops 5 minutes before it would fire
    rules, _ = load_rules_text(RULE, "t.yaml")
    store, db = MemoryStore(), StateDB(tmp_path / "alerts.db")
    e, _sink, clock = engine(RULE, state=db)
    for x in v[:cut]:
        event = ev(float(x), clock.now())
        store.write([event])
        e.on_event(event)
        clock.advance(STEP)
    e.flush()
    db.close()
    db2 = StateDB(tmp_path / "alerts.db")
    e2 = Engine(rules, state=db2, sink=Recorder(), clock=clock)
    await seed_windows(e2, store, clock)
    out = []
    for x in v[cut:]:
        out += [((t.at - T0) / MIN, t.state.value) for t in feed(e2, clock, float(x))]
        clock.advance(STEP)
    db2.close()
    assert out[:1] == [(fired_at, "firing")]
