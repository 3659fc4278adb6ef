"""Corrective-action notes and acknowledgements through the service: recorded in the ledger once, shown on the
alert's retained state; hostile payloads are logged and ignored, and change nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from alerting import ledger
from alerting.engine import Engine
from alerting.notify.outbox import Outbox
from alerting.payloads import Ack, Note, parse_ack, parse_note
from alerting.rules import load_rules_text
from alerting.service import AlertService
from alerting.settings import AlertingSettings
from alerting.state import StateDB
from alerting.transition import AlertState
from tests.support.engine import T0
from vigil.core.clock import ManualClock
from vigil.core.settings import MqttSettings

SERIES = "d/s/temperature"
KEY = f"hot/{SERIES}"
ACK = f"vigil/ack/hot/{SERIES}"
NOTES = f"vigil/notes/hot/{SERIES}"


def _service() -> tuple[AlertService, StateDB, ManualClock]:
    rules, _ = load_rules_text("rules: [{name: hot, above: 30, latch: true}]", "r.yaml")
    db = StateDB(":memory:")
    outbox = Outbox(db.conn)
    outbox.create_tables()
    clock = ManualClock(T0)
    e = Engine(rules, state=db, sink=outbox, clock=clock)
    return AlertService(AlertingSettings(), MqttSettings(), e), db, clock


def event(service: AlertService, value: float, ts: float) -> None:
    body = {"device": "d", "sensor": "s", "metric": "temperature", "value": value, "ts": ts, "unit": "°C"}
    service.handle("vigil/events/d/temperature", json.dumps(body).encode())


def retained(service: AlertService) -> dict[str, Any]:
    """The last state the service queued for the alert's topic."""
    last: dict[str, Any] = {}
    while not service.outgoing.empty():
        topic, payload = service.outgoing.get_nowait()
        if topic == f"vigil/alerts/{KEY}":
            last = json.loads(payload)
    return last


def note(service: AlertService, note_id: str, text: str, by: str = "ana") -> None:
    service.handle(NOTES, json.dumps({"id": note_id, "by": by, "text": text}).encode())


def test_a_latched_alert_is_cleared_on_its_topic_then_acknowledged_with_a_note_and_resolved() -> None:
    service, db, clock = _service()
    event(service, 35.0, T0)
    clock.advance(30)
    event(service, 20.0, T0 + 30)
    state = retained(service)
    assert state["state"] == "cleared" and state["latched"] is True and state["peak"] == 35.0
    assert state["ended"] == T0 + 30 and state["acknowledged_by"] is None and state["notes"] == []
    clock.advance(60)
    service.handle(ACK, json.dumps({"by": "ana", "comment": "", "episode": T0, "via": "link",
                                    "note": "moved the stock to freezer 2"}).encode())
    state = retained(service)
    assert state["state"] == "resolved" and state["previous"] == "cleared"
    assert state["acknowledged_by"] == "ana" and state["acknowledged_at"] == T0 + 90
    assert [n["text"] for n in state["notes"]] == ["moved the stock to freezer 2"]
    assert [e.kind for e in ledger.entries(db.conn)] == ["fired", "cleared", "acked", "note", "resolved"]
    assert ledger.entries(db.conn, kinds=["acked"])[0].body["via"] == "link"


def test_notes_are_recorded_once_by_id_and_the_last_twenty_are_shown() -> None:
    service, db, clock = _service()
    event(service, 35.0, T0)
    for i in range(25):
        clock.advance(1)
        note(service, f"n{i}", f"step {i}")
    note(service, "n3", "step 3")  # delivered again
    note(service, "n3", "a different text, the same id")
    assert len(ledger.entries(db.conn, kinds=["note"])) == 25
    state = retained(service)
    assert [n["text"] for n in state["notes"]] == [f"step {i}" for i in range(5, 25)]
    assert state["notes"][-1] == {"by": "ana", "text": "step 24", "at": T0 + 25}
    assert ledger.verify(db.conn) == []


def test_a_note_on_an_alert_that_never_was_is_not_recorded_and_one_that_fired_once_is() -> None:
    service, db, clock = _service()
    note(service, "x", "nothing here")
    assert ledger.entries(db.conn) == []
    event(service, 35.0, T0)
    clock.advance(10)
    event(service, 20.0, T0 + 10)
    assert service.engine.acknowledge("hot", SERIES, "ana") is not None
    clock.advance(3 * 86400)
    event(service, 19.0, T0 + 3 * 86400)  # calm: its flapping count is forgotten
    assert service.engine.prune() == 1 and KEY not in service.engine.alerts  # forgotten by the engine
    note(service, "later", "replaced the door seal")  # the ledger still knows it fired
    assert [e.body["text"] for e in ledger.entries(db.conn, kinds=["note"])] == ["replaced the door seal"]


def test_a_new_excursion_shows_only_its_own_notes() -> None:
    service, _db, clock = _service()
    event(service, 35.0, T0)
    note(service, "a", "first time")
    clock.advance(10)
    event(service, 20.0, T0 + 10)
    clock.advance(100)
    event(service, 36.0, T0 + 110)  # cleared -> firing: a new excursion
    assert retained(service)["notes"] == []
    note(service, "b", "second time")
    assert [n["text"] for n in retained(service)["notes"]] == ["second time"]


DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.mark.parametrize("topic,payload", [
    (NOTES, DEEP),
    (NOTES, b"x" * 200_000),
    (NOTES, b"\xff\xfe"),
    (NOTES, b"[]"),
    (NOTES, b'{"id": "a", "by": "ana"}'),
    (NOTES, b'{"id": 1, "by": "ana", "text": "t"}'),
    (NOTES, b'{"id": "a", "by": "ana", "text": NaN}'),
    (NOTES, b'{"id": "a", "by": "ana", "text": ""}'),
    (NOTES, json.dumps({"id": "a" * 65, "by": "ana", "text": "t"}).encode()),
    (NOTES, json.dumps({"id": "a", "by": "a" * 65, "text": "t"}).encode()),
    (NOTES, json.dumps({"id": "a", "by": "ana", "text": "t" * 2001}).encode()),
    (NOTES, json.dumps({"id": "a", "by": "an\u202ea", "text": "t"}).encode()),
    (NOTES, json.dumps({"id": "a", "by": "ana", "text": "nul \x00 here"}).encode()),
    ("vigil/notes/hot/d/s", b'{"id": "a", "by": "ana", "text": "t"}'),
    ("vigil/notes/hot/d/s/temperature/extra", b'{"id": "a", "by": "ana", "text": "t"}'),
    (ACK, DEEP),
    (ACK, b'{"by": "ana", "episode": "yesterday"}'),
    (ACK, b'{"by": "ana", "episode": true}'),
    (ACK, b'{"by": "ana", "episode": 1e999}'),
    (ACK, b'{"by": "ana", "episode": NaN}'),
    (ACK, b'{"by": "ana", "via": "carrier pigeon"}'),
    (ACK, b'{"by": "ana", "note": 42}'),
    (ACK, json.dumps({"by": "ana", "note": "n" * 2001}).encode()),
    (ACK, b'"ana"'),
])
def test_hostile_notes_and_acknowledgements_change_nothing(topic: str, payload: bytes,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    service, db, clock = _service()
    event(service, 35.0, T0)
    rows = len(ledger.entries(db.conn))
    with caplog.at_level(logging.WARNING):
        service.handle(topic, payload)
    assert not [r for r in caplog.records if r.exc_info], "a traceback: the message was not refused by name"
    assert [r for r in caplog.records if "ignoring" in r.getMessage() or "refused" in r.getMessage()]
    assert len(ledger.entries(db.conn)) == rows
    rec = service.engine.alerts[KEY]
    assert rec.state == AlertState.FIRING and rec.acked_by is None
    clock.advance(5)
    event(service, 20.0, T0 + 5)  # the engine goes on
    assert service.engine.alerts[KEY].state == AlertState.CLEARED


def test_the_payload_parsers() -> None:
    assert parse_note(b'{"id": "n1", "by": "ana", "text": "line 1\\nline 2", "extra": 1}') == \
        Note("n1", "ana", "line 1\nline 2")
    assert parse_ack(b"") == Ack("someone", "")
    assert parse_ack(b'{"by": "ana", "comment": "x"}') == Ack("ana", "x", None, "mqtt", None)
    assert parse_ack(b'{"by": "ana", "episode": 1700000000, "via": "link", "note": "  "}') == \
        Ack("ana", "", 1.7e9, "link", None)
    assert isinstance(parse_ack(b'{"episode": []}'), str)
