"""Hostile input: templates that reach for Python internals, template syntax in names, bad MQTT payloads."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from alerting.engine import Engine
from alerting.rules import RulesError, load_rules_text
from alerting.service import AlertService, parse_status
from alerting.settings import AlertingSettings
from alerting.templates import MessageTemplate, TemplateProblem
from tests.support.engine import T0, Recorder, engine, ev, feed
from vigil.core.clock import ManualClock
from vigil.core.settings import MqttSettings


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ value.__class__.__init__.__globals__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
])
def test_template_reaching_python_internals_is_refused(source: str) -> None:
    with pytest.raises(TemplateProblem, match=r"sandbox|unsafe|fails"):
        MessageTemplate(source).check()
    with pytest.raises(RulesError) as info:
        load_rules_text(f"rules: [{{name: x, above: 1, message: {json.dumps(source)}}}]", "r.yaml")
    assert "r.yaml:1: rule 'x': message:" in str(info.value)


@pytest.mark.parametrize("source", ["{{ labels.__class__ }}", "{{ rule.format.__globals__ }}",
                                    "{{ labels['__class__'] }}"])
def test_internals_through_a_mapping_or_builtin_come_out_empty(source: str) -> None:
    from alerting.templates import render_context_example

    t = MessageTemplate(source)
    t.check()
    assert t.render(render_context_example()) == ""


def test_device_name_with_template_syntax_is_printed_not_executed() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: hot, above: 30, message: "{{ device }} / {{ labels.room }} is {{ value }}"}
    """)
    feed(e, clock, 35.0, device="{{ 7*7 }}", room="{% for x in range(3) %}x{% endfor %}")
    assert sink.items[0].message == "{{ 7*7 }} / {% for x in range(3) %}x{% endfor %} is 35.0"


def test_a_template_failing_at_run_time_still_sends_a_message() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: hot, above: 30, message: "{{ value | round(1) }} {{ labels.site.upper() }}"}
    """)
    feed(e, clock, 35.0)  # no 'site' label: undefined.upper() fails
    assert sink.items[0].message.startswith("hot: freezer-1/t0/temperature is firing (message template failed")


def test_huge_message_is_cut() -> None:
    e, sink, clock = engine("""
    rules:
      - {name: hot, above: 30, message: "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}"}
    """)
    feed(e, clock, 35.0)
    assert len(sink.items[0].message) == 4000


@pytest.mark.parametrize("payload,expected", [
    (b"online", True), (b"offline", False), (b'{"status": "offline", "ip": "x"}', False),
    (b'{"state":"online"}', True), (b"banana", None), (b"{not json", None), (b"", None),
])
def test_parse_status(payload: bytes, expected: object) -> None:
    assert parse_status(payload) is expected


async def test_bad_messages_are_skipped_and_good_ones_still_evaluated() -> None:
    rules, _ = load_rules_text("rules: [{name: hot, above: 30}, {name: device-offline, offline: true}]", "r.yaml")
    sink = Recorder()
    e = Engine(rules, sink=sink, clock=ManualClock(T0))
    service = AlertService(AlertingSettings(), MqttSettings(), e)
    good = {"device": "d", "sensor": "s", "metric": "temperature", "value": 35, "ts": T0}
    hostile = [
        ("vigil/events/d/temperature", b"{not json"),
        ("vigil/events/d/temperature", b"[]"),
        ("vigil/events/d/temperature", json.dumps({**good, "value": "NaN"}).encode()),
        ("vigil/events/d/temperature", json.dumps({**good, "value": float("inf")}).encode()),
        ("vigil/events/d/temperature", b"x" * 1_000_000),
        ("vigil/events/d/temperature", json.dumps({**good, "value": "warm"}).encode()),
        ("vigil/events/d/temperature", "\udcff".encode("utf-8", "surrogatepass")),
        ("vigil/status/d", b"\x00\xff"),
        ("vigil/status/d/extra", b"offline"),
        ("vigil/ack/hot/d/s/temperature", b"not json"),
        ("vigil/ack/hot", b"{}"),
        ("other/topic", b"whatever"),
    ]
    for topic, payload in hostile:
        service.handle(topic, payload)
    assert sink.items == []
    service.handle("vigil/events/d/temperature", json.dumps(good).encode())
    assert [t.state.value for t in sink.items] == ["firing"]
    service.handle("vigil/ack/hot/d/s/temperature", json.dumps({"by": "ana", "comment": "on it"}).encode())
    topic, payload = service.outgoing.get_nowait()  # the firing state
    topic, payload = service.outgoing.get_nowait()  # the same, acknowledged
    assert topic == "vigil/alerts/hot/d/s/temperature"
    body = json.loads(payload)
    assert body["state"] == "firing" and body["acknowledged_by"] == "ana" and body["ack_comment"] == "on it"
    await asyncio.sleep(0)


async def test_the_service_timer_loop_fires_a_pending_alert_with_no_new_message() -> None:
    clock = ManualClock(T0)
    rules, _ = load_rules_text("rules: [{name: hot, above: 30, for: 5m}]", "r.yaml")
    sink = Recorder()
    service = AlertService(AlertingSettings(), MqttSettings(), Engine(rules, sink=sink, clock=clock))
    service.handle("vigil/events/d/temperature", json.dumps(
        {"device": "d", "sensor": "s", "metric": "temperature", "value": 35, "ts": T0}).encode())
    service.catchup.live.set()  # connected, and the backlog is in: timers may fire
    task = asyncio.create_task(service.timers(clock))
    try:
        for _ in range(5):
            clock.advance(60)
            for _ in range(5):
                await asyncio.sleep(0)
        assert [t.state.value for t in sink.items] == ["firing"]
        assert sink.items[0].at == T0 + 300
        published = [service.outgoing.get_nowait() for _ in range(service.outgoing.qsize())]
        assert [json.loads(p)["state"] for _, p in published] == ["pending", "firing"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_reading_from_a_clock_far_in_the_future_does_not_freeze_the_series() -> None:
    e, _sink, clock = engine("rules: [{name: hot, above: 30}]")
    e.on_event(ev(20.0, T0 + 10 * 365 * 86400))
    assert [t.state.value for t in feed(e, clock, 35.0)] == ["firing"]
    assert [t.state.value for t in feed(e, clock, 20.0)] == ["resolved"]


def test_rules_text_with_an_alias_bomb_or_too_large_is_refused_quickly() -> None:
    bomb = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    with pytest.raises(RulesError) as info:
        load_rules_text(bomb + "rules: []\n", "bomb.yaml")
    assert str(info.value) == "bomb.yaml:2: YAML aliases (*name) are not accepted in rules files; write the value out"
    with pytest.raises(RulesError, match=r"larger than 512 KB"):
        load_rules_text("rules: []\n" + "#" * 524_288, "big.yaml")
    with pytest.raises(RulesError, match=r"nested too deeply"):
        load_rules_text("rules: " + "[" * 50_000 + "]" * 50_000, "deep.yaml")
    rules, _ = load_rules_text('rules: [{name: x, match: {device: "freezer-*"}, above: 1}]', "ok.yaml")
    assert rules.rules[0].spec.match.device == "freezer-*"
