"""Hypothesis over the input surfaces not fuzzed in their own tests (tests/unit/broker_bridge/test_fuzz.py fuzzes
the bridge's pipeline in-process): hostile topics and payloads through a running `vigil bridge` with
good traffic around them; vigil.yaml and rules files; the dashboard's HTTP API as a real process.

Each surface must refuse clearly (its own error type, a 4xx), never crash or hang, and the good
traffic around the bad must arrive untouched.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from alerting.rules import RulesError, load_rules_text
from tests.support.bridge import BridgeProcess, publish_many, reading
from tests.support.chain import INGEST_TOKEN, READER_TOKEN, Dashboard, PersistentRecorder, influx_counts
from tests.support.pipeline import SOURCES
from tests.support.services import Influxd, Mosquitto, free_port, wait_until
from tests.support.strategies import TOPICS as UNIT_TOPICS
from tests.support.strategies import payloads as unit_payloads
from vigil.app.config import ConfigError, load_config

pytestmark = pytest.mark.integration

FIXTURES_OK = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)

def _sendable(text: str) -> bool:
    """Mosquitto silently drops a client whose topic holds a Unicode non-character (U+FDD0..U+FDEF, U+xFFFE/F)."""
    return not any(0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE for c in text)


# Topic levels a publisher can really send: Mosquitto drops a PUBLISH whose topic holds NUL, control
# characters or non-characters (the bridge never sees it), and paho refuses wildcards in a topic it publishes.
levels = st.one_of(
    st.sampled_from(["", " ", "$x", "a b", "é", "Ω-freezer", "x=1,y=2", "\"q\"", "it's", "back\\slash", "..", "t0"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="+#/"),
            max_size=20).filter(_sendable),
    st.text(st.sampled_from("ab"), min_size=200, max_size=300),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
GOOD = {"value": -18.5, "unit": "°C", "seq": 1}


@st.composite
def bad_payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values), allow_nan=True).encode()
    if kind == 2:  # a good reading with one field made hostile
        body: dict[str, Any] = {**GOOD, "ts": time.time()}
        body[draw(st.sampled_from(["value", "ts", "unit", "seq", "metric", "labels"]))] = draw(json_values)
        return json.dumps(body, allow_nan=True).encode()
    if kind == 3:
        return draw(st.sampled_from([b"NaN", b"1e999", b'{"value": NaN}', b'{"value": Infinity, "ts": 1}',
                                     b"\xff\xfe", b"[]" * 1000, b'{"value":' * 500, b"85", b"-127"]))
    return b"x" * draw(st.integers(60_000, 80_000))  # over the bridge's max_payload_bytes


@st.composite
def readings_topics(draw: st.DrawFn) -> str:
    shape = draw(st.integers(0, 3))
    a, b = draw(levels), draw(levels)
    return ["vigil/readings/{a}/{b}", "vigil/readings/{a}", "vigil/readings/{a}/{b}/extra", "vigil/readings/{a}/t0"][
        shape].format(a=a, b=b)


@pytest.fixture
def live_bridge(mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path) -> Iterator[BridgeProcess]:
    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge")
    bridge.start()
    yield bridge
    bridge.stop()


def test_hostile_topics_and_payloads_through_a_running_bridge_leave_the_good_readings_untouched(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, live_bridge: BridgeProcess) -> None:
    sent = {"messages": 0, "good": 0}
    t0 = time.time() - 1000

    @settings(FIXTURES_OK, max_examples=10)
    @given(st.lists(st.tuples(readings_topics(), bad_payloads()), min_size=1, max_size=8))
    def each(bad: list[tuple[str, bytes]]) -> None:
        good = []
        for _ in range(2):
            good.append(("vigil/readings/good/t0", reading(1.0, t0 + sent["good"] / 10, seq=sent["good"])))
            sent["good"] += 1
        publish_many(mosquitto, [good[0], *bad, good[1]])
        sent["messages"] += len(bad) + 2

    each()
    assert wait_until(lambda: live_bridge.metric("vigil_bridge_received_total") == sent["messages"], 30), \
        (live_bridge.metric("vigil_bridge_received_total"), sent)
    assert wait_until(lambda: influx_counts(influxd, influx_db).get("good") == sent["good"], 20)
    assert live_bridge.proc is not None and live_bridge.proc.poll() is None
    assert "Traceback" not in live_bridge.log.read_text(errors="replace")


def test_every_payload_format_through_a_running_bridge_leaves_the_good_readings_untouched(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path) -> None:
    """The sources of every format (tests/support/pipeline.py's table) on their own topics, in a real `vigil bridge`."""
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump({"bridge": {"sources": SOURCES}}, allow_unicode=True))
    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge",
                           extra=["-c", str(tmp_path / "vigil.yaml")])
    sent = {"good": 0}
    t0 = time.time() - 1000
    format_topics = st.builds(lambda tpl, a, b: tpl.format(a=a, b=b), st.sampled_from(UNIT_TOPICS), levels, levels
                              ).filter(lambda t: not t.startswith("$"))

    @settings(FIXTURES_OK, max_examples=10)
    @given(st.lists(st.tuples(format_topics, unit_payloads), min_size=1, max_size=8))
    def each(bad: list[tuple[str, bytes]]) -> None:
        good = [("vigil/readings/good/t0", reading(1.0, t0 + (sent["good"] + i) / 10, seq=sent["good"] + i))
                for i in range(2)]
        sent["good"] += 2
        # The good readings on a connection of their own: Mosquitto may disconnect a publisher for a
        # hostile message, and paho then resent it first on every reconnect, so the good reading
        # behind it on the same connection never reached the broker (the test lost 1 of 20).
        publish_many(mosquitto, [good[0]])
        publish_tolerantly(mosquitto, bad)
        publish_many(mosquitto, [good[1]])

    try:
        bridge.start()
        each()
        assert wait_until(lambda: influx_counts(influxd, influx_db).get("good") == sent["good"], 30), \
            (influx_counts(influxd, influx_db), sent)
        with httpx.Client() as http:
            text = http.get(f"http://127.0.0.1:{bridge.metrics_port}/metrics").text
        assert 'reason="internal"' not in text, text
        received = bridge.metric("vigil_bridge_received_total") or 0
        assert received > sent["good"], "no hostile message reached the bridge: the test would prove nothing"
        assert bridge.proc is not None and bridge.proc.poll() is None
        assert "Traceback" not in bridge.log.read_text(errors="replace")
    finally:
        bridge.stop()


def publish_tolerantly(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publish hostile messages, each on its own connection: one the broker refuses costs only itself."""
    for topic, payload in messages:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{free_port()}", protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        try:
            c.publish(topic, payload, qos=1).wait_for_publish(5)
        except (RuntimeError, ValueError):
            pass  # refused by paho or dropped by the broker: nothing else rode on this connection
        finally:
            c.loop_stop()
            c.disconnect()


YAML_SAMPLES = [
    "mqtt: {url: 'mqtt://127.0.0.1:1883'}\nstore: {url: 'sqlite:///x.db'}\n",
    "bridge:\n  sources:\n    - {name: t, format: tasmota, topic: 'tele/{device}/SENSOR'}\n",
    "alerting: {rules: rules.yaml, partition: 0/2}\ndashboard: {listen: '127.0.0.1:8080'}\n",
    "edge: {device: pi, sensors: [{name: t0, type: simulated}]}\n",
    "a: &x [1, 2]\nb: *x\n",
]
RULE_SAMPLES = [
    "rules:\n  - {name: hot, above: 30, for: 5m, notify: ops}\nreceivers: {ops: ['json://127.0.0.1/x']}\n",
    "rules:\n  - name: r\n    rate: {window: 5m, above: 2}\n    message: '{{ device }} {{ value }}'\n",
    "rules:\n  - {name: n, nodata: 10m, series: [a/b/temperature]}\n  - {name: o, offline: true}\n",
    "rules:\n  - {name: a, aggregate: {fn: p95, window: 10m, above: 12}, source: store, every: 1m}\n",
    "rules:\n  - {name: x, anomaly: {method: mad, window: 1h, threshold: 4}}\nsilences: []\n",
]


@st.composite
def mutated_yaml(draw: st.DrawFn, samples: list[str]) -> str:
    text = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 2))
        if op == 0:
            text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
        elif op == 1:
            text = text[:pos] + draw(st.sampled_from(
                [":", "-", "{", "}", "[", "]", "'", '"', "\t", "\n  ", "&a ", "*a", "!!python/object ", "%", "@",
                 "1e999", ".nan", "~", "yes", "0x10", "{{", "}}", "{% for %}", "\\", "\x00", "é"])) + text[pos:]
        else:
            text = text[:pos] + draw(st.text(max_size=6)) + text[pos:]
    return text


@settings(max_examples=300, deadline=None)
@given(st.one_of(mutated_yaml(YAML_SAMPLES), st.text(max_size=200),
                 st.builds(lambda v: yaml.safe_dump(v), json_values)))
def test_vigil_yaml_is_loaded_or_refused_with_config_error_only(text: str) -> None:
    path = Path("/tmp") / f"vigil-e2e-fuzz-{free_port()}.yaml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.issues and all(str(i) for i in exc.issues)
    finally:
        path.unlink()


@settings(max_examples=300, deadline=None)
@given(st.one_of(mutated_yaml(RULE_SAMPLES), st.text(max_size=200),
                 st.builds(lambda v: yaml.safe_dump({"rules": [v]}), json_values)))
def test_rules_are_loaded_or_refused_with_rules_error_only(text: str) -> None:
    try:
        load_rules_text(text, "fuzz.yaml")
    except RulesError as exc:
        assert "fuzz.yaml" in str(exc)


@pytest.fixture
def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[str]:
    board = Dashboard(tmp_path, mosquitto, f"sqlite:///{tmp_path}/vigil.db")
    try:
        yield board.base
        assert "Traceback" not in board.proc.output(), board.proc.output()[-3000:]
    finally:
        board.stop()


params = st.dictionaries(
    st.sampled_from(["device", "sensor", "metric", "range", "start", "end", "bucket", "points", "aggregate",
                     "format", "topic", "state", "rule", "series", "severity"]),
    st.one_of(st.text(max_size=30), st.sampled_from(["-1", "0", "1e309", "nan", "inf", "99999999999999999999",
                                                     "2026-13-45T99:99:99Z", "1h", "-7d", "$x", "a/b", "+", "#"])),
    max_size=6,
)


def test_the_http_api_never_answers_500_and_good_ingest_still_arrives(
        mosquitto: Mosquitto, dashboard: str) -> None:
    readings = PersistentRecorder(mosquitto, "vigil/readings/#", client_id="e2e-fuzz-readings")
    good = {"n": 0}
    try:
        with httpx.Client(base_url=dashboard, timeout=15) as http:

            @FIXTURES_OK
            @given(st.one_of(bad_payloads(), st.builds(lambda v: json.dumps([v] * 3).encode(), json_values)),
                   params, st.sampled_from(["/api/v1/history", "/api/v1/latest", "/api/v1/sparklines",
                                            "/api/v1/devices", "/api/v1/alerts"]), params)
            def each(body: bytes, ingest_q: dict[str, str], path: str, read_q: dict[str, str]) -> None:
                r = http.post("/api/v1/readings", params=ingest_q, content=body,
                              headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"})
                assert r.status_code < 500, (r.status_code, r.text[:300], ingest_q, body[:200])
                r = http.get(path, params=read_q, headers={"Authorization": f"Bearer {READER_TOKEN}"})
                assert r.status_code < 500, (path, read_q, r.status_code, r.text[:300])
                ok = http.post("/api/v1/readings", params={"device": "good", "sensor": "t0"},
                               json={**GOOD, "ts": time.time(), "seq": good["n"]},
                               headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
                assert ok.status_code == 202, ok.text
                good["n"] += 1

            each()
        assert wait_until(lambda: len(readings.on("vigil/readings/good/t0")) == good["n"], 10)
        got = sorted(m.json()["seq"] for m in readings.on("vigil/readings/good/t0"))
        assert got == list(range(good["n"]))
        # Whatever the API let through is a finite number on a readings topic.
        for m in readings.messages:
            value = m.json()["value"]
            assert isinstance(value, (int, float)) and math.isfinite(value), m
    finally:
        readings.close()
