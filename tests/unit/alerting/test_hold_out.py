"""``hold_out: true`` on a jump or noise rule, on a manual clock: a reading it flags is kept out of every other
rule on its series (they judge as if it had not come), still counts as an arrival for ``stale``, is counted by
rule, and the flagging rule's message says so."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.intake import HeldOut
from alerting.rules import RulesError, load_rules_text
from tests.support.engine import T0, engine, ev, feed

RULES = """
rules:
  - name: implausible
    match: {metric: temperature}
    jump: {max_step: 5, per: 1m}
    hold_out: HOLD
  - name: too-warm
    match: {metric: temperature}
    above: -10
  - name: warm-on-average
    match: {metric: temperature}
    aggregate: {fn: max, window: 10m, above: -10}
  - name: rising
    match: {metric: temperature}
    rate: {window: 5m, above: 1}
  - name: silent
    match: {metric: temperature}
    stale: {after: 1m}
  - name: gone
    match: {metric: temperature}
    nodata: 5m
"""


def fired(items: list[tuple[float, str, str, str]], rule: str) -> list[tuple[float, str]]:
    return [(at, state) for at, r, state, _ in items if r == rule]


def run(hold: bool, values: list[float], step: float = 10.0) -> tuple[list[tuple[float, str, str, str]], object]:
    e, _sink, clock = engine(RULES.replace("HOLD", "true" if hold else "false"))
    out = []
    for v in values:
        out += [(t.at - T0, t.rule, t.state.value, t.message) for t in feed(e, clock, v)]
        clock.advance(step)
        out += [(t.at - T0, t.rule, t.state.value, t.message) for t in e.tick()]
    return out, e


def test_a_spike_held_out_fires_no_threshold_and_says_why() -> None:
    out, e = run(True, [-18.2, -18.1, 25.0, -18.0, -18.1])
    assert fired(out, "implausible") == [(20, "firing"), (30, "resolved")]
    assert fired(out, "too-warm") == [] and fired(out, "warm-on-average") == [] and fired(out, "rising") == []
    message = next(m for _, r, s, m in out if r == "implausible" and s == "firing")
    assert message == "freezer-1/t0 jumped from -18.1 to 25.0 °C in 10 s; kept out of the other rules"
    assert e.intake.held_out == {"implausible": 1}  # type: ignore[attr-defined]
    # the others read the last plausible value; the stored series (the bridge's) is not the engine's concern
    series = e.series["freezer-1/t0/temperature"]  # type: ignore[attr-defined]
    assert 25.0 not in [v for _, v in series.samples]


def test_without_hold_out_the_same_spike_fires_the_threshold() -> None:
    out, e = run(False, [-18.2, -18.1, 25.0, -18.0, -18.1])
    assert fired(out, "implausible") == [(20, "firing"), (30, "resolved")]
    assert fired(out, "too-warm") == [(20, "firing"), (30, "resolved")]
    assert fired(out, "warm-on-average")[0] == (20, "firing")
    message = next(m for _, r, s, m in out if r == "implausible" and s == "firing")
    assert message == "freezer-1/t0 jumped from -18.1 to 25.0 °C in 10 s"
    assert not e.intake.held_out  # type: ignore[attr-defined]


def test_a_sensor_stuck_on_a_wild_value_is_alive_but_kept_out_until_the_move_is_possible() -> None:
    # 85 °C (a DS18B20's power-on value) every 10 s: 103 °C from -18 is possible only after 20.6 min
    out, e = run(True, [-18.0] + [85.0] * 150)
    assert fired(out, "implausible")[0] == (10, "firing")
    assert fired(out, "silent") == []          # a held-out reading still proves the sensor alive
    assert fired(out, "gone")[0] == (300, "firing")  # as if nothing had come: the last plausible reading at 0
    # once the move is possible the reading is plausible again, and the threshold judges it
    assert fired(out, "implausible")[1] == (1240, "resolved")
    assert fired(out, "too-warm") == [(1240, "firing")]
    assert e.intake.held_out["implausible"] == 123  # type: ignore[attr-defined]


def test_the_held_out_readings_are_told_with_the_reason() -> None:
    e, _sink, clock = engine(RULES.replace("HOLD", "true"))
    told: list[HeldOut] = []
    e.intake.listener = told.append
    for v in [-18.0, 25.0, -18.0]:
        feed(e, clock, v)
        clock.advance(10)
    assert told == [HeldOut("implausible", "freezer-1/t0/temperature", T0 + 10, 25.0,
                            "freezer-1/t0 jumped from -18.0 to 25.0 °C in 10 s")]


def test_noise_holds_out_the_rattling_readings() -> None:
    rules = """
    rules:
      - {name: noisy, match: {metric: temperature}, noise: {factor: 5, window: 1h, recent: 5m}, hold_out: true}
      - {name: mean-warm, match: {metric: temperature}, aggregate: {fn: avg, window: 2m, above: -16}}
    """
    e, _sink, clock = engine(rules)
    rng = np.random.default_rng(3)
    quiet = -18.0 + rng.normal(0, 0.05, 60)
    rattle = -18.0 + rng.normal(0, 3.0, 30)
    out = []
    for v in [*quiet, *rattle]:
        out += feed(e, clock, float(v))
        clock.advance(20)
    assert [t.state.value for t in out if t.rule == "noisy"][:1] == ["firing"]
    held = e.intake.held_out["noisy"]
    assert held > 10
    # the rule that holds out judges every reading, the others only the plausible ones
    raw, plain = e.intake.raw["freezer-1/t0/temperature"], e.series["freezer-1/t0/temperature"]
    assert raw.samples is not None and plain.samples is not None
    assert len(raw.samples) == 90 and raw.keep == 3600 and plain.keep == 120
    assert plain.ts is not None and raw.ts is not None and plain.ts < raw.ts


@pytest.mark.parametrize("rule", ["above: 5", "stale: {after: 1m}", "all: [{above: 1}, {jump: {max_step: 1}}]"])
def test_hold_out_is_refused_on_rules_other_than_jump_and_noise(rule: str) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules_text(f"rules:\n  - {{name: r, {rule}, hold_out: true}}\n", "r.yaml")
    assert "hold_out is for jump and noise rules" in str(exc.value)


def test_a_device_clock_far_ahead_does_not_blind_the_holding_rule() -> None:
    e, sink, clock = engine(RULES.replace("HOLD", "true"))
    feed(e, clock, -18.0)
    clock.advance(10)
    e.on_event(ev(-18.0, clock.now() + 1e9))  # one reading stamped 30 years ahead
    clock.advance(10)
    feed(e, clock, 25.0)
    assert e.intake.held_out == {"implausible": 1}
    assert ("firing", "implausible") in [(t.state.value, t.rule) for t in sink.items]
    assert "too-warm" not in [t.rule for t in sink.items]


def test_a_late_implausible_reading_is_judged_and_held_out_too() -> None:
    e, _sink, clock = engine(RULES.replace("HOLD", "true"))
    for v in (-18.2, -18.1, -18.0):
        feed(e, clock, v)
        clock.advance(10)
    late = e.on_event(ev(1e6, clock.now() - 25))  # older than the latest judged, and impossible
    assert [(t.rule, t.state.value) for t in late] == [("implausible", "firing")]
    assert e.intake.held_out == {"implausible": 1}
    assert [t.rule for t in feed(e, clock, -18.1)] == ["implausible"]  # plausible again: resolved; no threshold
