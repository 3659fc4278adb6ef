"""Hostile messages on every topic the rule engine consumes, through the real `vigil alerting` process and
a private Mosquitto: retained ones present at start-up and live ones between good events. The good events
still fire their alerts at a local HTTP receiver, once each; the engine stays up and says on its health
what it refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

DEEP = b"[" * 30_000 + b"]" * 30_000
EVENT = {"sensor": "t0", "metric": "temperature", "unit": "°C"}


def _rules(receiver: Receiver) -> str:
    return f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, notify: ops, message: "{{{{ device }}}} is hot"}}
  - {{name: gone, offline: true, notify: ops, message: "{{{{ device }}}} went offline"}}
"""


def _hostile(root: str = "vigil") -> list[tuple[str, bytes]]:
    ev = {**EVENT, "device": "h", "value": 40.0, "ts": 1.7e9}
    return [
        (f"{root}/events/h/temperature", DEEP),
        (f"{root}/events/h/temperature", b"x" * 200_000),
        (f"{root}/events/h/temperature", b"\xff\xfe\xfd"),
        (f"{root}/events/h/temperature", json.dumps({**ev, "seq": 1}).encode().replace(b'"seq": 1', b'"seq": 1e999')),
        (f"{root}/events/h/temperature", json.dumps({**ev, "value": "warm"}).encode()),
        (f"{root}/events/h/temperature", b'{"device": "h", "value": NaN}'),
        (f"{root}/events/h/temperature", b"[]"),
        (f"{root}/status/h", DEEP),
        (f"{root}/status/h", b'{"status": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
        (f"{root}/ack/hot/good-1/t0/temperature", DEEP),
        (f"{root}/ack/hot/good-1/t0/temperature", b'{"by": 1e999}'),
        (f"{root}/silences/bad", b'{"matchers": {}, "until": 1' + b"0" * 400 + b"}"),
        (f"{root}/silences/bad2", DEEP),
        (f"{root}/health/bridge/evil", DEEP),
        (f"{root}/health/bridge/evil2", b'{"state": "ok", "spool_events": Infinity}'),
        (f"{root}/control/rules/reload", DEEP),
    ]


def test_hostile_messages_retained_and_live_leave_good_events_alerting(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(_rules(receiver))
    for topic, payload in _hostile():  # retained: the engine meets them at start-up, and after each restart
        if "/events/" not in topic and "/ack/" not in topic and "/control/" not in topic:
            probe.raw(topic, payload, retain=True)
    health: list[dict[str, Any]] = []
    probe.client.message_callback_add("vigil/health/alerting/#", lambda c, u, m: health.append(json.loads(m.payload)))
    probe.client.subscribe("vigil/health/alerting/#", qos=1)
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(tmp_path / "alerts.db")])
    engine.start()
    wait_for(lambda: "connected to the broker" in engine.output(), 30, "the engine to connect")
    for i in range(5):
        for topic, payload in _hostile():
            probe.raw(topic, payload)
        probe.event(f"good-{i}", 35.0 + i)
    probe.raw("vigil/status/good-0", b"offline", retain=True)
    expected = {f"[FIRING warning] hot good-{i}/t0/temperature" for i in range(5)} | {
        "[FIRING warning] gone good-0/device/status"}
    wait_for(lambda: {b.get("title") for b in receiver.bodies} == expected, 30,
             f"the alerts of the good events; got {[b.get('title') for b in receiver.bodies]}")
    assert engine.proc is not None and engine.proc.poll() is None, engine.output()[-3000:]
    assert len(receiver.bodies) == 6, receiver.bodies
    wait_for(lambda: health and health[-1].get("refused", {}).get("nested too deeply", 0) >= 5, 30,
             f"the engine's health to count its refusals: {health[-1:]}")
    doc = health[-1]
    assert doc["state"] == "ok" and doc["events"] >= 5, doc
    assert set(doc["refused"]) >= {"nested too deeply", "too large", "not an event", "not a status",
                                   "not a health document"}, doc["refused"]
    # every alert state it published is strict JSON (no NaN, no Infinity)
    for states in probe.alerts.values():
        for body in states:
            json.loads(json.dumps(body), parse_constant=lambda name: pytest.fail(f"{name} in an alert state"))
    # each refusal is logged once per topic and reason, not once per message
    log = engine.output()
    assert log.count("refused a message on 'vigil/events/h/temperature' (nested too deeply)") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    engine.stop()  # a clean stop sends no last will: the engine says it stopped itself
    wait_for(lambda: health[-1]["state"] == "offline" and health[-1]["problems"] == ["stopped"], 10,
             "the engine to say it stopped")

