"""Hostile input at the dashboard's edges: JSON bounds, one bad message among good ones, bodies, errors."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import httpx
import pytest

from alerting.templates import MessageTemplate, render_context_example
from dashboard.live import LiveState
from tests.support.dashboard_app import INGEST_TOKEN, NOW, VIEWER_TOKEN, Harness, old_sqlite_store
from vigil.core.event import Event
from vigil.core.jsonlimits import MAX_DEPTH, JsonRefused, dumps, loads
from vigil.core.stores import MemoryStore
from vigil.core.topics import Topics

DEEP = b'{"state": "online", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
GOOD_EVENT = Event("freezer", "t0", "temperature", -18.5, NOW, "°C").to_json()


def strict(text: str) -> object:
    """JSON.parse as a browser does it: NaN and Infinity are not JSON."""
    def refuse(name: str) -> object:
        raise ValueError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("text", "reason"), [
    (b"[" * 40 + b"]" * 40, "more than 32 levels"),
    (b'{"value": 1e999}', "out of range"),
    (b'{"value": -1e999}', "out of range"),
    (b'{"value": ' + b"9" * 400 + b"}", "400 digits"),
    (b'{"value": NaN}', "NaN"),
    (b'{"value": Infinity}', "Infinity"),
    (b"[" * 60_000, "more than 32 levels"),
    (b"x" * 70_000, "larger than"),
])
def test_the_bounded_parser_refuses_with_a_reason(text: bytes, reason: str) -> None:
    with pytest.raises(JsonRefused, match=reason):
        loads(text, 65_536)


def test_brackets_in_strings_do_not_count_as_nesting() -> None:
    assert loads(b'{"a": "[[[[\\"[[[[", "b": [[1]]}', 1000) == {"a": '[[[[\"[[[[', "b": [[1]]}
    assert loads(b'{"a": "' + b"[" * 100 + b'"}', 1000) == {"a": "[" * 100}
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, 1000) is not None


def test_dumps_writes_null_for_what_json_cannot_hold() -> None:
    text = dumps({"a": math.inf, "b": [math.nan, 1.5, -math.inf], "c": {"d": (math.inf,)}})
    assert strict(text) == {"a": None, "b": [None, 1.5, None], "c": {"d": [None]}}


def test_one_hostile_message_among_good_ones_is_refused_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    live = LiveState(Topics())
    sub = live.subscribe()
    caplog.set_level(logging.WARNING, "dashboard.live")
    hostile = [
        ("vigil/status/evil", DEEP),
        ("vigil/status/evil", b'{"state": "online", "t": 1e999}'),
        ("vigil/alerts/hot/freezer/t0/temperature", b'{"state": "firing", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("vigil/alerts/hot/freezer/t1/temperature", b'{"state": "firing", "value": 1e999}'),
        ("vigil/events/freezer/temperature", b'{"device": "freezer", "sensor": "t9", "metric": "temperature", '
                                             b'"value": "inf", "ts": 1700000000}'),
        ("vigil/events/freezer/temperature", b"[" * 100_000),
        ("vigil/silences/s1", b'{"matchers": ' + b"[" * 100_000 + b"}"),
        ("vigil/ack/hot/freezer/t0/temperature", b'{"by": ' + b"9" * 5000 + b"}"),
    ]
    live.handle("vigil/status/freezer", b'{"state": "online", "version": "1.0"}', NOW)
    for topic, payload in hostile:
        live.handle(topic, payload, NOW)
        live.handle("vigil/events/freezer/temperature", GOOD_EVENT, NOW)
    assert live.counters["bad_messages"] == len(hostile)
    assert live.devices == {"freezer": {"device": "freezer", "state": "online", "since": NOW,
                                        "details": {"version": "1.0"}}}
    assert list(live.latest) == ["freezer/t0/temperature"] and live.alerts == {} and live.silences == {}
    logged = [r.getMessage() for r in caplog.records if "ignored a bad message" in r.getMessage()]
    assert len(logged) == len({t for t, _ in hostile}), logged  # once per topic
    assert "vigil/status/evil" in logged[0] and "JsonRefused" in logged[0]
    live.flush()
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        assert item is not None
        for message in item.decode().split("\n\n")[:-1]:
            strict(message.split("\ndata: ", 1)[1])


async def test_a_store_holding_infinity_answers_200_without_the_bad_point(harness: Harness, tmp_path: Path) -> None:
    store = old_sqlite_store(tmp_path / "old.db", [1.0, 2.0, math.inf, 3.0, -math.inf, 4.0, math.inf], NOW - 600)
    harness.client._transport.app.state.ctx.store = store  # type: ignore[attr-defined]
    try:
        h = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        r = await harness.client.get("/api/v1/history", params={"device": "freezer", "sensor": "t0", "range": "1h",
                                                               "bucket": 60}, headers=h)
        assert r.status_code == 200, r.text
        body = strict(r.text)
        assert isinstance(body, dict)
        assert [p[1] for p in body["points"]] == [1.0, 2.0, 3.0, 4.0]
        assert body["stats"]["max"] == 4.0 and body["stats"]["min"] == 1.0
        r = await harness.client.get("/api/v1/sparklines", params={"hours": 1, "points": 60}, headers=h)
        assert r.status_code == 200
        assert [p[1] for p in strict(r.text)["freezer/t0/temperature"]] == [1.0, 2.0, 3.0, 4.0]  # type: ignore[index]
        r = await harness.client.get("/api/v1/latest", headers=h)
        assert r.status_code == 200 and strict(r.text)[0]["value"] is None  # type: ignore[index]
        r = await harness.client.get("/api/v1/devices", headers=h)
        assert r.status_code == 200 and strict(r.text)
    finally:
        store.close()


HOSTILE_QUERIES = [
    {"bucket": "inf"}, {"bucket": "nan"}, {"bucket": "-1"}, {"bucket": "0"}, {"bucket": "1e400"},
    {"bucket": "9" * 400}, {"bucket": "1e-300"}, {"start": "9" * 400}, {"start": "1e400"}, {"end": "9" * 5000},
    {"start": "-5"}, {"end": "99999999999999"}, {"range": "inf"},
    {"range": "-1h"}, {"points": "9" * 400}, {"points": "nan"}, {"aggregate": "x" * 10_000},
    {"device": "a/b"}, {"device": "\x00"}, {"metric": "#"}, {"start": "2024-13-45T99:99:99Z"},
]


@pytest.mark.parametrize("params", HOSTILE_QUERIES, ids=lambda p: ",".join(f"{k}={v[:12]}" for k, v in p.items()))
async def test_hostile_history_queries_get_a_4xx_with_a_sentence(harness: Harness, params: dict[str, str]) -> None:
    harness.store.write([Event("freezer", "t0", "temperature", 1.0, NOW - 60, "°C")])
    q = {"device": "freezer", "sensor": "t0", "range": "1h", **params}
    r = await harness.client.get("/api/v1/history", params=q, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["error"] and "Traceback" not in r.text


INGEST_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"value": ' + b"1" * 400 + b', "ts": 1700000000, "unit": "C"}',
    b'{"value": 1, "ts": ' + b"1" * 400 + b', "unit": "C"}',
    b'{"value": 1e999, "ts": 1700000000, "unit": "C"}',
    b'{"value": 1, "ts": 1700000000, "unit": "C", "seq": ' + b"9" * 400 + b"}",
    b"\xef\xbb\xbf" + b"[" * 50_000,
    "[".encode("utf-16-be") * 50_000,
    b"\xff\xfe\xfd",
]


@pytest.mark.parametrize("body", INGEST_BODIES, ids=range(len(INGEST_BODIES)))
@pytest.mark.parametrize("fmt", [None, "zigbee2mqtt", "tasmota", "plain", "line_protocol", "nosuchformat"])
async def test_hostile_ingest_bodies_get_a_4xx_and_publish_nothing(harness: Harness, body: bytes,
                                                                    fmt: str | None) -> None:
    params = {"device": "d", "sensor": "s"} if fmt is None else {"format": fmt, "topic": "zigbee2mqtt/d"}
    r = await harness.client.post("/api/v1/readings", params=params, content=body,
                                  headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["error"] and "Traceback" not in r.text
    assert harness.publisher.sent == []


@pytest.mark.parametrize("path", ["/api/v1/silences", "/api/v1/rules/validate", "/api/v1/rules/reload",
                                  "/api/v1/alerts/hot/freezer/t0/temperature/ack", "/login", "/logout",
                                  "/api/v1/readings", "/api/v1/nothing-here"])
async def test_every_route_refuses_deep_or_huge_bodies_before_authentication(harness: Harness, path: str) -> None:
    for body, status, words in [(b"[" * 100_000 + b"]" * 100_000, 400, "levels deep"),
                                (b"{" + b" " * 5 * 1024 * 1024 + b"}", 413, "larger than")]:
        r = await harness.client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and words in r.json()["error"], (path, r.status_code, r.text[:200])


async def test_a_defect_is_a_logged_500_and_a_callers_mistake_a_422(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        def latest(self, metric: str | None = None, device: str | None = None) -> list[Event]:
            raise ValueError("a defect deep in a store")

    app = harness.client._transport.app  # type: ignore[attr-defined]
    h = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    # as uvicorn does: the 500 is answered, and the exception goes on up to the server
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=h) as client:
        r = await client.get("/api/v1/history", params={"device": "freezer", "sensor": "t0", "range": "soon"})
        assert r.status_code == 422 and r.json()["error"].startswith("range: "), r.text
        r = await client.get("/api/v1/history", params={"device": "free+zer", "sensor": "t0"})
        assert r.status_code == 422 and "device" in r.json()["error"], r.text
        app.state.ctx.store = Broken()
        caplog.set_level(logging.ERROR, "dashboard.app")
        r = await client.get("/api/v1/latest")
    # a ValueError is no verdict on the request: only BadRequest (and request validation) is the caller's
    assert r.status_code == 500 and "defect" in r.json()["error"]
    assert "a defect deep in a store" not in r.text and "ValueError" not in r.text
    assert any("a defect deep in a store" in rec.getMessage() for rec in caplog.records)
    assert app.state.ctx.counters["internal_errors"] == 1


async def test_a_refused_action_says_why_with_a_422(harness: Harness) -> None:
    h = {"X-CSRF-Token": await harness.login()}
    for duration, words in [("forever", "forever"), ("400d", "duration must be between 1s and 366d")]:
        r = await harness.client.post("/api/v1/silences", json={"matchers": {"device": "x"}, "duration": duration},
                                      headers=h)
        assert r.status_code == 422 and words in r.json()["error"], r.text
    r = await harness.client.post("/api/v1/rules/edit", headers=h, json={
        "file": "rules.yaml", "text": "rules: []\n", "rule": "nope", "fields": {"for": "1m"}})
    assert r.status_code == 422 and r.json()["error"].startswith("not changed: no rule named 'nope'"), r.text
    assert harness.publisher.sent == []


async def test_template_bombs_are_refused_by_validation_for_a_read_only_token(harness: Harness) -> None:
    h = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    for message in ["{{ 'x' * 300000000 }}", "{{ '%300000000d' % 1 }}", "{{ 'x'.ljust(300000000) }}",
                    "{{ ('x' * 100000).join('y' * 100000) }}", "{{ ('y' * 100000)|join('x' * 100000) }}",
                    "{{ ('x' * 100000).translate({120: 'y' * 100000}) }}",
                    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"]:
        text = f"rules:\n  - name: bomb\n    above: 1\n    message: \"{message}\"\n"
        r = await harness.client.post("/api/v1/rules/validate", json={"file": "rules.yaml", "text": text}, headers=h)
        assert r.status_code == 200 and r.json()["ok"] is False, r.text
        assert "rules.yaml:4: rule 'bomb': message:" in r.json()["issues"][0], r.json()
    # The engine's render never raises: a bomb gets the plain fallback message.
    ctx = render_context_example()
    assert "message template failed: TemplateLimit" in MessageTemplate("{{ 'x' * 300000000 }}").render(ctx)


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ '{:.1f}'.format(value) }}", "123456.7"), ("{{ '%d'|format(since_ts) }}", "1700000000"),
    ("{{ missing|default(1000000) }}", "1000000"), ("{{ since_ts|int + 5 }}", "1700000005"),
    ("{{ '%8.2f' % value }}", "123456.70"), ("{{ labels.site|center(12) }}", "  kitchen   "),
    ("{% for k, v in labels.items() %}{{ k }}={{ v }}{% endfor %}", "site=kitchen"),
    ("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", "x" * 3997 + "..."),
])
def test_ordinary_templates_are_not_refused_by_the_bounds(template: str, expected: str) -> None:
    t = MessageTemplate(template)
    t.check()
    assert t.render({**render_context_example(), "value": 123456.7, "since_ts": 1700000000}) == expected


def test_bad_messages_on_a_flood_of_topics_are_counted_but_not_logged_for_ever(
        caplog: pytest.LogCaptureFixture) -> None:
    live = LiveState(Topics())
    caplog.set_level(logging.WARNING, "dashboard.live")
    for i in range(1500):
        live.handle(f"vigil/status/evil-{i}", b'{"t": 1e999}', NOW)
    assert live.counters["bad_messages"] == 1500
    assert len(caplog.records) == 1001 and "no longer logging" in caplog.records[-1].getMessage()
