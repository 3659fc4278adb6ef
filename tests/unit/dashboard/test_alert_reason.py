"""An alert's ``reason`` (why a sensor-health rule flags a series) reaches the pages checked: a known kind,
finite numbers, a short unit; odd, huge or missing reasons leave the alert shown without one, and every page
still answers 200."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.dashboard_app import NOW, Harness

TOPIC = "vigil/alerts/stuck/freezer/t0/temperature"


def alert(reason: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"rule": "stuck", "series": "freezer/t0/temperature", "state": "firing", "at": NOW,
                            "since": NOW, "message": "freezer/t0 has read -18.2 °C unchanged since ...", **extra}
    if reason is not None:
        body["reason"] = reason
    return json.dumps(body, allow_nan=True).encode()


async def test_a_reason_is_kept_as_published(harness: Harness) -> None:
    reason = {"kind": "stuck", "since": NOW - 3600, "value": -18.2, "limit": 1800.0, "unit": "°C"}
    harness.live.handle(TOPIC, alert(reason), NOW)
    assert harness.live.alerts["stuck/freezer/t0/temperature"]["reason"] == reason
    await harness.login()
    (current,) = (await harness.client.get("/api/v1/alerts")).json()["current"]
    assert current["reason"] == reason


async def test_an_alert_without_a_reason_has_none(harness: Harness) -> None:
    harness.live.handle(TOPIC, alert(), NOW)
    assert "reason" not in harness.live.alerts["stuck/freezer/t0/temperature"]


HOSTILE: list[Any] = [
    "stuck since 03:12",                       # a string, not an object
    ["kind", "stuck"],
    {"kind": "<script>alert(1)</script>"},     # an unknown kind
    {"kind": None},
    {"since": NOW},                            # no kind
    {"kind": {"nested": "stuck"}},
    {"kind": "stuck" * 10_000},
]


@pytest.mark.parametrize("reason", HOSTILE)
async def test_an_odd_reason_is_dropped_and_the_alert_kept(harness: Harness, reason: Any) -> None:
    harness.live.handle(TOPIC, alert(reason), NOW)
    kept = harness.live.alerts["stuck/freezer/t0/temperature"]
    assert kept["state"] == "firing" and "reason" not in kept


async def test_odd_fields_of_a_known_kind_are_dropped_one_by_one(harness: Harness) -> None:
    reason = {"kind": "stale", "last": "yesterday", "interval": {"s": 60}, "limit": -1e16,
              "since": True, "value": 1e300, "to": None, "from": [1], "ratio": 9.0, "unit": "°C" * 1000,
              "extra": "x" * 10_000, "spread": 2**70}
    harness.live.handle(TOPIC, alert(reason), NOW)
    assert harness.live.alerts["stuck/freezer/t0/temperature"]["reason"] == {
        "kind": "stale", "ratio": 9.0, "unit": ("°C" * 8)}
    harness.live.handle(TOPIC, alert({"kind": "noise", "unit": 5}), NOW)
    assert harness.live.alerts["stuck/freezer/t0/temperature"]["reason"] == {"kind": "noise"}


async def test_a_reason_too_big_or_with_nan_refuses_the_message_not_the_feed(harness: Harness) -> None:
    harness.live.handle(TOPIC, alert({"kind": "stuck", "pad": "x" * 70_000}), NOW)
    harness.live.handle(TOPIC, alert({"kind": "stuck", "since": float("nan")}), NOW)
    harness.live.handle(TOPIC, alert({"kind": "stuck", "since": float("inf")}), NOW)
    assert "stuck/freezer/t0/temperature" not in harness.live.alerts
    assert harness.live.counters["bad_messages"] == 3
    harness.live.handle(TOPIC, alert({"kind": "stuck", "since": NOW}), NOW)
    assert harness.live.alerts["stuck/freezer/t0/temperature"]["reason"] == {"kind": "stuck", "since": NOW}


@pytest.mark.parametrize("reason", [*HOSTILE, {"kind": "jump", "from": -1e308, "to": 1e308},
                                    {"kind": "forecast", "reach_at": -1.0, "threshold": 0}, {"kind": "stale"}])
async def test_every_page_answers_whatever_the_reason(harness: Harness, reason: Any) -> None:
    harness.live.handle(TOPIC, alert(reason), NOW)
    await harness.login()
    for path in ("/", "/alerts", "/sensor/freezer/t0/temperature", "/api/v1/alerts", "/api/v1/latest",
                 "/static/flags.js"):
        r = await harness.client.get(path)
        assert r.status_code == 200, (path, r.text[:200])


async def test_a_drift_reason_keeps_its_numbers(harness: Harness) -> None:
    harness.live.handle(TOPIC, alert({"kind": "drift", "difference": 1.1, "baseline": 0.1, "rate": 0.2,
                                      "unit": "°C"}), NOW)
    assert harness.live.alerts["stuck/freezer/t0/temperature"]["reason"] == {
        "kind": "drift", "difference": 1.1, "baseline": 0.1, "rate": 0.2, "unit": "°C"}
