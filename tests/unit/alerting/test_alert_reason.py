"""The ``reason`` of a sensor-health alert's payload on ``vigil/alerts/...``: the facts behind the message, as
data, for a dashboard to word in its own time zone; other rules' payloads are as before. Manual clock."""

from __future__ import annotations

import json
import math

import numpy as np

from alerting.transition import Transition, sensor_reason
from tests.support.engine import T0, engine, feed


def payload(t: Transition) -> dict[str, object]:
    body = json.loads(t.to_json())
    assert isinstance(body, dict)
    return body


def test_stale_says_when_the_last_reading_came_and_the_usual_interval() -> None:
    e, sink, clock = engine("rules:\n  - {name: stale, stale: {factor: 3}}\n")
    for i in range(8):
        if i:
            clock.advance(60)
        feed(e, clock, -18.0)
    last = clock.now()
    for _ in range(200):
        clock.advance(1.0)
        e.tick()
    (fired,) = sink.items
    assert payload(fired)["reason"] == {"kind": "stale", "last": last, "interval": 60.0, "limit": 180.0, "unit": "°C"}


def test_stuck_says_since_when_and_the_value() -> None:
    e, sink, clock = engine("rules:\n  - {name: stuck, stuck: {after: 30m}}\n")
    for i in range(40):
        feed(e, clock, -18.2, sensor="t0")
        feed(e, clock, -18.0 - i % 3 / 10, sensor="t1")  # its sibling moves
        clock.advance(60)
    (fired,) = sink.items
    assert payload(fired)["reason"] == {"kind": "stuck", "since": T0, "value": -18.2, "limit": 1800.0, "unit": "°C"}


def test_jump_says_from_and_to() -> None:
    e, sink, clock = engine("rules:\n  - {name: j, jump: {max_step: 5, per: 1m}}\n")
    for v in (-18.2, -18.1, 25.0):
        feed(e, clock, v)
        clock.advance(10)
    (fired,) = sink.items
    assert payload(fired)["reason"] == {"kind": "jump", "from": -18.1, "to": 25.0, "elapsed": 10.0, "unit": "°C"}


def test_noise_gives_both_spreads_and_their_ratio() -> None:
    e, sink, clock = engine("rules:\n  - {name: n, noise: {factor: 5, window: 1h, recent: 5m}}\n")
    rng = np.random.default_rng(5)
    for v in [*rng.normal(-18, 0.05, 360), *rng.normal(-18, 1.0, 60)]:
        feed(e, clock, float(v))
        clock.advance(10)
    fired = sink.items[0]
    reason = payload(fired)["reason"]
    assert isinstance(reason, dict) and reason["kind"] == "noise" and reason["unit"] == "°C"
    assert reason["spread"] > 5 * reason["usual"] > 0
    assert math.isclose(reason["ratio"], reason["spread"] / reason["usual"])


def test_forecast_says_when_it_will_reach_the_threshold() -> None:
    e, sink, clock = engine("rules:\n  - {name: f, forecast: {above: -12, within: 20m, window: 30m}}\n")
    for v in [-20.0] * 30 + [-19.7 + 0.3 * i for i in range(18)]:
        feed(e, clock, v)
        clock.advance(60)
    fired = sink.items[0]
    reason = payload(fired)["reason"]
    assert isinstance(reason, dict) and reason["kind"] == "forecast" and reason["threshold"] == -12.0
    assert fired.at < reason["reach_at"] <= fired.at + 20 * 60
    assert reason["rate"] > 0


def test_other_rules_publish_the_payload_they_always_did() -> None:
    e, _sink, clock = engine("rules:\n  - {name: warm, above: -10}\n")
    (fired,) = feed(e, clock, -5.0)
    assert "reason" not in payload(fired)
    assert Transition.from_json(fired.to_json()) == fired


def test_a_reason_survives_the_state_file_and_the_outbox_round_trip() -> None:
    e, sink, clock = engine("rules:\n  - {name: j, jump: {max_step: 5, per: 1m}}\n")
    for v in (-18.2, 25.0):
        feed(e, clock, v)
        clock.advance(10)
    (fired,) = sink.items
    assert Transition.from_json(fired.to_json()) == fired


def test_only_finite_numbers_are_kept_and_compound_rules_have_none() -> None:
    facts = {"interval": float("nan"), "limit": float("inf"), "stuck_since": True, "eta": "soon"}
    assert sensor_reason(["stale"], facts, None, T0, "") == (("kind", "stale"),)
    assert sensor_reason(["forecast"], facts, 3.0, T0, "") == (("kind", "forecast"),)
    assert sensor_reason(["stuck"], {"stuck_since": np.float32(5)}, None, T0, "%") == (
        ("kind", "stuck"), ("since", 5.0), ("unit", "%"))
    assert sensor_reason(["all"], {"stuck_since": T0}, 1.0, T0, "°C") == ()
    assert sensor_reason(["above"], {}, 1.0, T0, "°C") == ()


def test_drift_gives_the_difference_now_its_baseline_and_rate() -> None:
    facts = {"difference": 1.1, "baseline": 0.1, "rate": 0.2, "siblings": ["freezer-2/t1"], "reason": "text"}
    assert sensor_reason(["drift"], facts, 1.1, T0, "°C") == (
        ("kind", "drift"), ("difference", 1.1), ("baseline", 0.1), ("rate", 0.2), ("unit", "°C"))


def test_restarts_gives_how_many_and_when_the_last_was_seen() -> None:
    facts = {"restarts": 4, "last_restart": T0 - 60, "reason": "garage-pi rebooted 4 times in the last 1d"}
    assert sensor_reason(["restarts"], facts, 4.0, T0, "s") == (
        ("kind", "restarts"), ("count", 4.0), ("last", T0 - 60), ("unit", "s"))
