"""Hypothesis over ``Pipeline.process``: whatever arrives, it returns (no exception, no hang), every
message is accounted for, no parser bug shows as ``internal``, and what it stores is sane."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker_bridge.pipeline import Pipeline
from vigil.core.topics import validate_segment

from .conftest import NOW, make_pipeline

TOPICS = [
    "vigil/readings/{a}/{b}", "vigil/readings/{a}", "shellies/{a}/ext_temperature/{b}", "shellies/{a}/sensor/{b}",
    "{a}/events/rpc", "{a}/status/{b}", "esphome/{a}/sensor/{b}/state", "w1/{a}/{b}", "tele/{a}/SENSOR",
    "berlin/tele/{a}/SENSOR", "zigbee2mqtt/{a}", "home/{a}/{b}", "hass/{a}/state", "telegraf/{a}", "lp_s/{a}",
    "{a}", "{a}/{b}",
]
SAMPLES = [
    b'{"value":-18.5,"ts":1699999999,"unit":"\xc2\xb0C","seq":1,"labels":{"site":"x"}}',
    b"47.69",
    b'{"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":49.7},"TempUnit":"C"}',
    b'{"temperature":27.34,"humidity":44.72,"battery":97,"linkquality":120,"last_seen":1699999990000}',
    b'{"src":"s","method":"NotifyStatus","params":{"ts":1699999996.16,"temperature:0":{"id":0,"tC":23.5}}}',
    b'{"temperature":"21.3","sensors":{"air":[{"t":20,"rh":30}]},"time":"2023-11-14T22:13:00Z","unit":"F"}',
    b"temperature,device=freezer,sensor=p\\ 1,room=lab value=-18.5,n=3i,s=\"x y\" 1699999990000000000",
]
levels = st.one_of(st.sampled_from(["d", "sensor", "temperature:0", "", " ", "$x", "a b", "é"]),
                   st.text(max_size=12), st.text(min_size=120, max_size=140))


@st.composite
def topics(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(TOPICS))
    return template.format(a=draw(levels), b=draw(levels))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            del data[pos % len(data)]
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            data[pos:pos] = draw(st.sampled_from([b"NaN", b"1e999", b'"', b"\\", b"{", b"[", b"-", b",", b"\n",
                                                  b"null", b"true", b" ", b"=", b"\xff"]))
    return bytes(data)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["value", "ts", "unit", "Temperature", "temperature", "DS18B20", "params", "method",
                         "tC", "temperature:0", "last_seen", "Time", "TempUnit", "labels", "src", "x"]),
        inner, max_size=5)),
    max_leaves=12,
)
payloads = st.one_of(
    st.sampled_from(SAMPLES),
    mutated(),
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
)

PIPELINE: Pipeline = make_pipeline(max_payload_bytes=2048)


@pytest.mark.timeout(120)
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(topics(), payloads, st.booleans())
def test_process_returns_and_accounts_for_every_message(topic: str, payload: bytes, retained: bool) -> None:
    before = PIPELINE.counters.passed_over
    out = PIPELINE.process(topic, payload, NOW, retained)
    assert out.events or out.dead or out.duplicates or PIPELINE.counters.passed_over == before + 1
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
