"""Hypothesis over ``Pipeline.process``: whatever arrives, it returns (no exception, no hang), no parser
bug shows as ``internal``, every dead letter says why, and what it stores is sane."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker_bridge.pipeline import Pipeline
from tests.support.pipeline import NOW, make_pipeline
from tests.support.strategies import payloads, topics
from vigil.core.topics import validate_segment

PIPELINE: Pipeline = make_pipeline(max_payload_bytes=2048)


@pytest.mark.timeout(120)
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(topics(), payloads, st.booleans())
def test_process_returns_and_says_why_it_refuses(topic: str, payload: bytes, retained: bool) -> None:
    out = PIPELINE.process(topic, payload, NOW, retained)
    for d in out.dead:
        assert d.reason != "internal", d.detail
        assert d.reason and d.detail
        body = json.loads(d.to_json())
        assert body["reason"] == d.reason and body["size"] == len(payload)
    for e in out.events:
        assert math.isfinite(e.value) and math.isfinite(e.ts)
        validate_segment(e.device)
        validate_segment(e.sensor)
        validate_segment(e.metric)
        assert e.device == e.device.strip() and e.sensor == e.sensor.strip()
        assert e.ts <= NOW + 300 and e.ts >= NOW - 30 * 86400
        assert json.loads(e.to_json())["value"] == e.value


def test_pathological_payloads_return_quickly() -> None:
    p = make_pipeline()
    for payload in (b"[" * 60_000, b'{"a":' * 20_000, b"1" * 60_000, b"\\" * 60_000, b'"' * 60_000,
                    b"t,device=a " + b"\\ " * 30_000, b"e" * 60_000):
        for topic in ("vigil/readings/d/s", "telegraf/h", "esphome/n/sensor/t/state", "zigbee2mqtt/z",
                      "hass/x/state", "x/events/rpc"):
            out = p.process(topic, payload, NOW)
            assert out.dead and out.dead[0].reason != "internal", (topic, out.dead[0].detail)
