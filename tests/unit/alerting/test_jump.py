"""Implausible jumps and noise, on a manual clock: the reason is in the message; real moves, a trend,
one spike (for noise) and a coarse sensor raise nothing."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.rules import RulesError, load_rules_text
from tests.support.engine import T0, engine, feed

JUMP = """
rules:
  - name: implausible
    match: {metric: temperature}
    jump: {max_step: 5, per: 1m}
"""
NOISE = """
rules:
  - name: noisy
    match: {metric: temperature}
    noise: {factor: 5, window: 1h, recent: 5m}
"""


def run(rule: str, values: list[float] | np.ndarray, step: float = 10.0) -> list[tuple[float, str, str]]:
    e, _sink, clock = engine(rule)
    out = []
    for v in values:
        out += [(t.at - T0, t.state.value, t.message) for t in feed(e, clock, float(v))]
        clock.advance(step)
    return out


def test_a_spike_and_its_return_make_one_alert_with_the_reason() -> None:
    out = run(JUMP, [-18.2, -18.1, 25.0, -18.0, -18.1])
    # the return is judged against -18.1 (the last plausible reading), not against 25
    assert [(at, s) for at, s, _ in out] == [(20, "firing"), (30, "resolved")]
    assert out[0][2] == "freezer-1/t0 jumped from -18.1 to 25.0 °C in 10 s"
    assert out[1][2] == "freezer-1/t0 moves plausibly again (-18.0 °C)"


def test_a_real_move_within_the_limit_is_plausible() -> None:
    # 4.9 °C in 10 s is within 5 per minute (never less than max_step); 5 °C a minute for 10 minutes too
    assert run(JUMP, [-18.0, -13.1, -13.0]) == []
    assert run(JUMP, [-18 + 5 * i for i in range(10)], step=60) == []


def test_the_limit_scales_with_the_time_since_the_last_plausible_reading() -> None:
    # 20 °C in 2 minutes (more than 2 x 5): flagged; stuck there, it is possible 4 minutes after the 0
    out = run(JUMP, [0.0, 20.0, 20.0, 20.0, 20.0], step=120)
    assert [(at, s) for at, s, _ in out] == [(120, "firing"), (240, "resolved")]
    assert out[0][2].endswith("jumped from 0.0 to 20.0 °C in 2m")


def noise(n: int, sd: float, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_noise_far_above_the_usual_spread_fires_and_clears() -> None:
    quiet, loud = noise(360, 0.05), noise(60, 1.0, seed=6)  # an hour at 0.05 °C, then 10 minutes at 1 °C
    out = run(NOISE, np.concatenate([-18 + quiet, -18 + loud, -18 + noise(120, 0.05, seed=7)]))
    assert [s for _, s, _ in out] == ["firing", "resolved"]
    at, _, message = out[0]
    assert 3600 < at <= 3600 + 150 + 10  # once half the recent differences are noisy (a median)
    assert message.startswith("freezer-1/t0 is noisy: its readings vary by ")
    assert "x its usual" in message
    assert "is calmer again" in out[1][2]


def test_noise_ignores_a_spike_a_trend_and_its_own_steady_noise() -> None:
    base = -18 + noise(720, 0.3)
    spike = base.copy()
    spike[400] = 10.0
    trend = base + np.linspace(0, 10, 720)
    for series in (base, spike, trend):
        assert run(NOISE, series) == []


def test_noise_on_a_coarse_sensor() -> None:
    # 0.1 °C steps, most differences zero: the usual spread is not zero, and min_spread sets a floor
    coarse = np.round(-18 + noise(720, 0.04), 1)
    assert run(NOISE, coarse) == []
    floored = NOISE.replace("recent: 5m}", "recent: 5m, min_spread: 0.5}")
    louder = np.concatenate([coarse[:400], np.round(-18 + noise(320, 0.2, seed=9), 1)])
    assert [s for _, s, _ in run(NOISE, louder)][:1] == ["firing"]
    assert run(floored, louder) == []


@pytest.mark.parametrize("body,error", [
    ("jump: {per: 1m}", "max_step"),
    ("jump: {max_step: 0}", "max_step"),
    ("jump: {max_step: 5, per: 0s}", "longer than 0s"),
    ("noise: {factor: 1}", "factor"),
    ("noise: {window: 10m, recent: 6m}", "at most half the window"),
    ("jump: {max_step: 5}\n    above: 3", "one condition per rule"),
])
def test_spec_errors(body: str, error: str) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules_text(f"rules:\n  - name: j\n    {body}\n", "j.yaml")
    assert error in str(exc.value)


def test_a_jump_inside_a_compound_and_on_another_series() -> None:
    out = run("""
    rules:
      - name: odd-and-warm
        all:
          - {jump: {max_step: 5}}
          - {above: 0}
    """, [-18.0, 25.0, -18.0])
    assert [(at, s) for at, s, _ in out] == [(10, "firing"), (20, "resolved")]
