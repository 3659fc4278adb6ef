"""The pipeline's promises: every message ends stored, counted as a duplicate, or dead-lettered with the
reason and the original; bounds hold; one bad message costs nothing else."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

import pytest

from broker_bridge.formats import FORMATS, RawReading
from broker_bridge.pipeline import DeadLetter, Pipeline
from broker_bridge.settings import BridgeSettings, SourceSettings
from tests.support.pipeline import NOW, make_pipeline
from vigil.core.event import Event
from vigil.core.topics import Topics

GOOD = b'{"value":-18.5,"ts":1699999999,"unit":"\xc2\xb0C","seq":1}'


def test_subscriptions_are_the_readings_tree_and_each_source_with_its_qos() -> None:
    p = make_pipeline(sources=[
        {"name": "shelly", "format": "plain", "topic": "shellies/{device}/ext_temperature/{sensor}", "qos": 0},
        {"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/{device}"},
        {"name": "hass", "format": "json_path", "topic": "home/+/{device}/#", "options": {"value_path": "t"}},
    ])
    assert p.subscriptions() == [
        ("vigil/readings/#", 1),
        ("shellies/+/ext_temperature/+", 0),
        ("zigbee2mqtt/+", 1),
        ("home/+/+/#", 1),
    ]
    assert Pipeline(BridgeSettings(), Topics("site-a/vigil")).subscriptions() == [("site-a/vigil/readings/#", 1)]
    out = p.process("home/kitchen/aqara/extra/levels", b'{"t": 21}', NOW)
    assert [(e.device, e.source, e.value) for e in out.events] == [("aqara", "hass", 21.0)]
    assert [d.source for d in p.process("$SYS/broker/uptime", b"1", NOW).dead] == ["unrouted"]
    assert [d.source for d in p.process("home/kitchen", b"1", NOW).dead] == ["unrouted"]


def test_oversized_payloads_are_refused_unparsed_with_the_bound_in_the_detail() -> None:
    p = make_pipeline(max_payload_bytes=1024)
    payload = b'{"value":1,"ts":1699999999,"unit":"C","labels":{"a":"' + b"x" * 2000 + b'"}}'
    out = p.process("vigil/readings/d/s", payload, NOW)
    assert [(d.reason, d.source) for d in out.dead] == [("too_large", "vigil")]
    assert f"{len(payload)} bytes is over the bound of 1024" in out.dead[0].detail
    assert len(p.process("vigil/readings/d/s", payload[:1000], NOW).dead) == 1  # parsed: not JSON any more


def test_a_topic_no_source_takes_goes_to_the_unrouted_dead_letters() -> None:
    p = make_pipeline()
    out = p.process("somewhere/else", b"1", NOW)
    assert [(d.source, d.reason) for d in out.dead] == [("unrouted", "topic")]
    assert out.dead[0].topic(Topics()) == "vigil/deadletter/unrouted"


def test_dead_letter_json_holds_reason_topic_original_and_time() -> None:
    p = make_pipeline()
    out = p.process("zigbee2mqtt/x", b'{"state":"ON"}', NOW)
    d = out.dead[0]
    assert d.topic(Topics("plant/vigil")) == "plant/vigil/deadletter/z2m"
    assert json.loads(d.to_json()) == {
        "source": "z2m", "reason": "no_readings", "detail": d.detail, "topic": "zigbee2mqtt/x",
        "payload": '{"state":"ON"}', "encoding": "utf-8", "truncated": False, "size": 14, "received": NOW,
    }


def test_dead_letter_of_binary_payload_is_base64_and_long_ones_truncated() -> None:
    binary = bytes(range(255, -1, -1)) * 40
    d = DeadLetter("vigil", "encoding", "not UTF-8", "vigil/readings/d/s", binary, NOW, payload_bound=100)
    body = json.loads(d.to_json())
    assert (body["encoding"], body["truncated"], body["size"]) == ("base64", True, 10240)
    assert base64.b64decode(body["payload"]) == binary[:100]
    text = ("é" * 100).encode()  # two bytes each: a cut at 99 splits a character
    body = json.loads(DeadLetter("s", "r", "d", "t", text, NOW, payload_bound=99).to_json())
    assert (body["encoding"], body["payload"], body["truncated"]) == ("utf-8", "é" * 49, True)
    body = json.loads(DeadLetter("s", "r", "x" * 5000, "t/" + "y" * 5000, b"", NOW).to_json())
    assert len(body["detail"]) == 500 and len(body["topic"]) < 1100


def test_dead_letters_for_events_the_store_refused() -> None:
    event = Event("d", "s", "temperature", 1.0, NOW, "°C", source="z2m", received=NOW)
    d = DeadLetter.for_event(event, "store_rejected", "field type conflict")
    assert (d.source, d.reason, d.topic(Topics())) == ("z2m", "store_rejected", "vigil/deadletter/z2m")
    assert Event.from_json(json.loads(d.to_json())["payload"]) == event


def test_outcomes_by_reason_and_source() -> None:
    p = make_pipeline()
    outs = [p.process("vigil/readings/d/s", GOOD, NOW), p.process("vigil/readings/d/s", GOOD, NOW),
            p.process("vigil/readings/d/s", b"nope", NOW),
            p.process("zigbee2mqtt/z", b'{"temperature":20,"humidity":400}', NOW), p.process("nowhere", b"", NOW)]
    dead = [d for out in outs for d in out.dead]
    assert (sum(len(out.events) for out in outs), sum(out.duplicates for out in outs)) == (2, 1)
    assert Counter(d.reason for d in dead) == {"json": 1, "range": 1, "topic": 1}
    assert Counter(d.source for d in dead) == {"vigil": 1, "z2m": 1, "unrouted": 1}


def test_a_thousand_malformed_messages_among_a_thousand_good_ones() -> None:
    p = make_pipeline()
    rng = random.Random(4)
    bad = [b"", b"{", b"null", b"[]", b'{"value":"x","ts":1,"unit":"C"}', b"\xff\xfe", b'{"value":NaN}',
           b'{"value":1,"ts":1699999999,"unit":"C","labels":{"a b":"c"}}', b"1e999", b"[" * 5000]
    messages = [(f"vigil/readings/dev{i % 50}/s",
                 f'{{"value":{i % 40}.5,"ts":{1699990000 + i},"unit":"C","seq":{i}}}'.encode(), True)
                for i in range(1000)]
    messages += [(f"vigil/readings/dev{i % 50}/s", bad[i % len(bad)], False) for i in range(1000)]
    rng.shuffle(messages)
    stored: list[Event] = []
    dead: list[DeadLetter] = []
    for topic, payload, _ in messages:
        out = p.process(topic, payload, NOW)
        stored += out.events
        dead += out.dead
    assert len(stored) == 1000
    assert sorted(e.seq for e in stored) == list(range(1000))  # type: ignore[type-var]
    assert len(dead) == 1000 and all(d.reason and d.detail for d in dead)
    assert {d.payload for d in dead} == set(bad)


def test_for_format_uses_configured_sources_or_the_usual_topic() -> None:
    settings = BridgeSettings()
    p = Pipeline.for_format(settings, Topics(), "tasmota")
    out = p.process("tele/th1/SENSOR", b'{"AM2301":{"Temperature":20.5}}', NOW)
    assert [(e.device, e.sensor, e.value) for e in out.events] == [("th1", "AM2301", 20.5)]
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        Pipeline.for_format(settings, Topics(), "csv")
    with pytest.raises(ValueError, match="needs a source"):
        Pipeline.for_format(settings, Topics(), "json_path")
    configured = BridgeSettings.model_validate(
        {"sources": [{"name": "ha", "format": "json_path", "topic": "h/{device}", "options": {"value_path": "t"}}]})
    p = Pipeline.for_format(configured, Topics(), "json_path")
    assert [e.value for e in p.process("h/x", b'{"t": 3}', NOW).events] == [3.0]


def test_a_parser_bug_costs_one_message_not_the_bridge(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]) -> list[RawReading]:
        raise KeyError("bug")

    monkeypatch.setattr(FORMATS["plain"], "parse", broken)
    settings = BridgeSettings.model_validate(
        {"sources": [{"name": "shelly", "format": "plain", "topic": "shellies/{device}/ext_temperature/{sensor}"}]})
    p = Pipeline(settings, Topics())
    out = p.process("shellies/x/ext_temperature/0", b"1", NOW)
    assert [d.reason for d in out.dead] == ["internal"]
    assert "KeyError" in caplog.text
    assert len(p.process("vigil/readings/d/s", GOOD, NOW).events) == 1


def test_a_source_on_a_wildcard_first_filter_does_not_take_broker_topics() -> None:
    # routed by the core's one matcher (vigil.core.topics.levels_match); a "$" topic is the broker's, never a source's
    p = make_pipeline(sources=[{"name": "any", "format": "plain", "topic": "+/{device}/{sensor}"}])
    assert [d.source for d in p.process("$SYS/broker/uptime", b"1", NOW).dead] == ["unrouted"]
    assert [(e.device, e.source) for e in p.process("site/freezer/t0", b"21.5", NOW).events] == [("freezer", "any")]
