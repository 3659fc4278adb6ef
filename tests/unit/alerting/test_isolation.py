"""One message never stops the rule engine: refusals are counted and logged once, tasks restart,
and nothing it publishes carries NaN or Infinity."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import pytest

from alerting.engine import Engine
from alerting.guard import refusal, supervised
from alerting.rules import load_rules_text
from alerting.service import AlertService
from alerting.settings import AlertingSettings
from tests.support.engine import T0, Recorder, engine, ev
from vigil.core.clock import ManualClock
from vigil.core.settings import MqttSettings


def _strict(text: str | bytes) -> Any:
    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in published JSON")
    return json.loads(text, parse_constant=no_constant)


def test_an_aggregate_that_overflows_publishes_null_not_infinity() -> None:
    e, sink, clock = engine("rules: [{name: p95, aggregate: {fn: p95, window: 10m, above: 12}}]")
    e.on_event(ev(1e308, T0))
    clock.advance(1)
    e.on_event(ev(-1e308, T0 + 1))  # numpy's percentile of these two is -inf
    assert [t.state.value for t in sink.items] == ["firing", "resolved"]
    for t in sink.items:
        _strict(t.to_json())
    for rec in e.alerts.values():
        _strict(rec.last_transition or "{}")


def _service() -> tuple[AlertService, Recorder]:
    rules, _ = load_rules_text("rules: [{name: hot, above: 30}, {name: device-offline, offline: true}]", "r.yaml")
    sink = Recorder()
    return AlertService(AlertingSettings(), MqttSettings(), Engine(rules, sink=sink, clock=ManualClock(T0))), sink


GOOD = {"device": "d", "sensor": "s", "metric": "temperature", "value": 35, "ts": T0}
DEEP = b"[" * 30_000 + b"]" * 30_000  # within the 64 KB a message may have


@pytest.mark.parametrize("topic,payload,reason", [
    ("vigil/events/d/temperature", DEEP, "nested too deeply"),
    ("vigil/events/d/temperature", b'{"a":' * 40 + b"1" + b"}" * 40, "nested too deeply"),
    ("vigil/events/d/temperature", json.dumps({**GOOD, "seq": 1e308 * 10}).encode().replace(b"Infinity", b"1e999"),
     "not an event"),
    ("vigil/events/d/temperature", b"\xff\xfe\x00garbage", "not an event"),
    ("vigil/events/d/temperature", b"x" * 200_000, "too large"),
    ("vigil/status/d", b'{"status":' + DEEP + b"}", "not a status"),
    ("vigil/status/d", b"\x00\xff", "not a status"),
    ("vigil/health/bridge/b1", DEEP, "not a health document"),
    ("vigil/health/bridge/b1", b'{"state": "ok", "at": NaN}', "not a health document"),
])
def test_a_hostile_message_is_refused_with_its_reason_and_the_next_good_one_is_evaluated(
        topic: str, payload: bytes, reason: str) -> None:
    service, sink = _service()
    service.guard.watchdog = None
    service.handle(topic, payload)
    assert service.guard.refused == Counter({reason: 1})
    service.handle("vigil/events/d/temperature", json.dumps(GOOD).encode())
    assert [t.state.value for t in sink.items] == ["firing"]


@pytest.mark.parametrize("topic,payload", [
    ("vigil/ack/hot/d/s/temperature", DEEP),
    ("vigil/ack/hot/d/s/temperature", b'{"by": ' + DEEP + b"}"),
    ("vigil/silences/x", DEEP),
    ("vigil/silences/x", b'{"matchers": {}, "until": 1' + b"0" * 400 + b"}"),
    ("vigil/silences/x", b'{"matchers": {}, "until": NaN}'),
])
def test_hostile_control_messages_change_nothing_and_raise_nothing(topic: str, payload: bytes,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    service, sink = _service()
    with caplog.at_level(logging.WARNING):
        service.handle(topic, payload)
    assert not [r for r in caplog.records if r.exc_info], "a traceback: the message was not refused by name"
    assert service.guard.refused == Counter()
    service.handle("vigil/events/d/temperature", json.dumps(GOOD).encode())
    assert [t.state.value for t in sink.items] == ["firing"]


def test_a_refused_message_is_logged_once_per_topic_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    service, _ = _service()
    bad = b'{"device": "d", "sensor": "s", "metric": "temperature", "value": 1, "ts": 1, "seq": 1e999}'
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            service.handle("vigil/events/d/temperature", bad)
        for _ in range(50):
            service.handle("vigil/events/d/temperature", b"{not json")
        service.handle("vigil/events/e/temperature", b"{not json")
    assert service.rejected == 101
    assert service.guard.refused == Counter({"not an event": 101})
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 2, [r.getMessage() for r in said]
    assert "vigil/events/d/temperature" in said[0].getMessage() and "only counted" in said[0].getMessage()


async def test_a_task_that_fails_is_started_again_and_counted() -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")

    service, _ = _service()
    restarts = service.guard.restarts
    await asyncio.wait_for(supervised("t", work, restarts, cap=0.01), 10)
    assert len(runs) == 3 and restarts == Counter({"t": 2})
    doc = service.guard.snapshot()
    assert doc["restarts"] == {"t": 2}
    assert doc["problems"] == ["task t failed and was restarted (2 time(s) in all): see the engine's log"]


def test_a_refused_subscription_is_named() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    assert refusal([ReasonCode(PacketTypes.SUBACK, identifier=1)]) is None
    assert refusal([ReasonCode(PacketTypes.SUBACK, identifier=0x87)]) == "Not authorized"
    assert refusal((0x80,)) == "reason code 0x80"
    assert refusal((1,)) is None


def test_a_reading_delivered_again_after_newer_ones_is_not_judged_twice() -> None:
    """Handled and committed, its acknowledgement lost with the connection: the broker delivers it again (DUP) after
    the readings that followed it. Judged again it would be a late excursion, told a second time."""
    from alerting.mqttloop import _not_judged_again
    from alerting.mqttread import Incoming

    service, sink = _service()
    hot, cool = {**GOOD, "value": 35, "ts": T0}, {**GOOD, "value": 20, "ts": T0 + 10}
    topic = "vigil/events/d/temperature"
    clock = service.engine.clock
    assert isinstance(clock, ManualClock)
    for body in (hot, cool):
        clock.set(body["ts"])
        service.handle(topic, json.dumps(body).encode())
    clock.set(T0 + 30)
    assert [t.state.value for t in sink.items] == ["firing", "resolved"]
    newer = {**GOOD, "value": 36, "ts": T0 + 20}
    batch = [Incoming(topic, json.dumps(b).encode(), i + 1, dup=True) for i, b in enumerate((hot, cool, newer))]
    acked: list[Incoming] = []
    rest = _not_judged_again(service, batch, acked.extend)
    assert [m.mid for m in acked] == [1, 2] and [m.mid for m in rest] == [3]
    assert not service.judged_before("vigil/status/d", b"online") and not service.judged_before(topic, b"{")
    # what it keeps from happening: the old reading judged again, after the resolve, fires again
    service.handle(topic, json.dumps(hot).encode())
    assert [t.state.value for t in sink.items] == ["firing", "resolved", "firing"]


def test_a_held_out_reading_delivered_again_is_not_judged_twice() -> None:
    """A reading a hold_out rule kept out moves only the raw copy's last reading: delivered again (DUP), it is known
    as judged all the same, and not held out (counted, told to the listener) a second time."""
    from alerting.mqttloop import _not_judged_again
    from alerting.mqttread import Incoming

    rules, _ = load_rules_text("rules: [{name: implausible, match: {metric: temperature}, jump: {max_step: 5, "
                               "per: 1m}, hold_out: true}, {name: hot, above: 30}]", "r.yaml")
    clock = ManualClock(T0)
    service = AlertService(AlertingSettings(), MqttSettings(), Engine(rules, sink=Recorder(), clock=clock))
    topic = "vigil/events/d/temperature"
    for i, value in enumerate((20, 60)):  # 60: a jump of 40 within 10 s, held out
        clock.set(T0 + 10 * i)
        service.handle(topic, json.dumps({**GOOD, "value": value, "ts": T0 + 10 * i}).encode())
    assert service.engine.intake.held_out == Counter({"implausible": 1})
    jumped = Incoming(topic, json.dumps({**GOOD, "value": 60, "ts": T0 + 10}).encode(), 7, dup=True)
    acked: list[Incoming] = []
    assert _not_judged_again(service, [jumped], acked.extend) == [] and acked == [jumped]
    assert service.engine.intake.held_out == Counter({"implausible": 1})
