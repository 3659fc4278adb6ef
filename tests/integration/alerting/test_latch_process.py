"""Latched alarms through a private Mosquitto and the real `vigil alerting` process: a latched alert clears and
stays cleared on its retained topic, a stale link's acknowledgement is ignored, the acknowledgement of its
excursion (with a note) resolves it, a note is recorded; the ledger in the state file holds each step once,
chained intact. Hostile notes and acknowledgements leave the running engine alerting."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerting import ledger
from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

KEY = "hot/f1/t0/temperature"
ENGINE_KINDS = ["fired", "cleared", "resolved", "acked", "note"]  # the rows the engine writes (delivery: told)
DEEP = b"[" * 30_000 + b"]" * 30_000


def _rules(receiver: Receiver) -> str:
    return f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, latch: true, notify: ops}}
"""


def _start(tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver,
           engine_process: Callable[[list[str]], EngineProcess]) -> EngineProcess:
    (tmp_path / "rules.yaml").write_text(_rules(receiver))
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(tmp_path / "alerts.db")])
    engine.start()
    wait_for(lambda: "connected to the broker" in engine.output(), 30, "the engine to connect")
    return engine


def _last(probe: MqttProbe, key: str = KEY) -> dict[str, Any]:
    states = probe.alerts.get(key) or [{}]
    return states[-1]


def _retained(mosquitto: Mosquitto, key: str = KEY) -> dict[str, Any]:
    """What a newcomer (a dashboard starting now) is told of the alert: its retained state."""
    fresh = MqttProbe(mosquitto.port)
    try:
        return wait_for(lambda: fresh.alerts.get(key, [None])[-1], 10, "the retained state")  # type: ignore[no-any-return]
    finally:
        fresh.close()


def test_a_latched_alert_clears_stays_cleared_and_resolves_on_the_acknowledgement_of_its_excursion(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    engine = _start(tmp_path, mosquitto, receiver, engine_process)
    t0 = time.time()
    probe.event("f1", 35.0, ts=t0)
    probe.event("f1", 41.5, ts=t0 + 1)
    # Told of the firing before the reading that clears it: the engine takes messages in batches, and a group
    # whose alert fired and cleared within one batch is told once, of where it stands (cleared, with its peak).
    wait_for(lambda: any("[FIRING" in b.get("title", "") for b in receiver.bodies), 20, "the firing notification")
    probe.event("f1", 20.0, ts=t0 + 2)
    wait_for(lambda: _last(probe).get("state") == "cleared", 20, f"the cleared state: {probe.alerts.get(KEY)}")
    cleared = _last(probe)
    assert cleared["latched"] is True and cleared["previous"] == "firing"
    assert (cleared["since"], cleared["peak"], cleared["ended"]) == (pytest.approx(t0), 41.5, pytest.approx(t0 + 2))
    assert cleared["acknowledged_by"] is None and cleared["notes"] == []

    probe.event("f1", 19.0, ts=t0 + 3)  # it stays cleared, whatever the readings say
    probe.raw("vigil/ack/" + KEY, json.dumps({"by": "ana", "episode": t0 - 3600, "via": "link"}))  # a stale link
    wait_for(lambda: "ignored: its current one began at" in engine.output(), 10, "the stale acknowledgement logged")
    assert _retained(mosquitto)["state"] == "cleared"

    probe.raw("vigil/notes/" + KEY, json.dumps({"id": "n-1", "by": "bo", "text": "door was left open"}))
    wait_for(lambda: [n["text"] for n in _last(probe).get("notes", [])] == ["door was left open"], 10,
             f"the note on the retained state: {_last(probe)}")
    probe.raw("vigil/notes/" + KEY, json.dumps({"id": "n-1", "by": "bo", "text": "door was left open"}))  # again

    probe.raw("vigil/ack/" + KEY, json.dumps({"by": "ana", "comment": "checked", "episode": cleared["since"],
                                              "via": "link", "note": "moved the stock to freezer 2"}))
    wait_for(lambda: _last(probe).get("state") == "resolved", 10, f"the resolved state: {_last(probe)}")
    resolved = _retained(mosquitto)
    assert resolved["state"] == "resolved" and resolved["previous"] == "cleared"
    assert resolved["acknowledged_by"] == "ana" and resolved["ack_comment"] == "checked"
    assert resolved["acknowledged_at"] >= t0 and resolved["peak"] == 41.5
    assert [n["text"] for n in resolved["notes"]] == ["door was left open", "moved the stock to freezer 2"]
    assert "Traceback" not in engine.output(), engine.output()[-3000:]
    engine.stop()

    with sqlite3.connect(tmp_path / "alerts.db") as conn:
        rows = ledger.entries(conn, keys=[KEY], kinds=ENGINE_KINDS)
        assert [r.kind for r in rows] == ["fired", "cleared", "note", "acked", "note", "resolved"], rows
        assert ledger.entries(conn, keys=[KEY], kinds=["told"])  # delivery's rows, in the same chain
        assert rows[1].body == {"since": cleared["since"], "at": cleared["at"], "peak": 41.5}
        assert rows[3].body["episode"] == cleared["since"] and rows[3].body["via"] == "link"
        assert rows[5].body["acknowledged_by"] == "ana" and rows[5].body["ended"] == cleared["ended"]
        assert ledger.verify(conn) == []


def _hostile() -> list[tuple[str, bytes]]:
    return [
        ("vigil/notes/" + KEY, DEEP),
        ("vigil/notes/" + KEY, b"x" * 200_000),
        ("vigil/notes/" + KEY, b"\xff\xfe\xfd"),
        ("vigil/notes/" + KEY, b'{"id": "n", "by": "x", "text": NaN}'),
        ("vigil/notes/" + KEY, json.dumps({"id": "n" * 100, "by": "x", "text": "t"}).encode()),
        ("vigil/notes/" + KEY, json.dumps({"id": "n", "by": "x", "text": "t" * 5000}).encode()),
        ("vigil/notes/" + KEY, json.dumps({"id": ["n"], "by": {"a": 1}, "text": 3}).encode()),
        ("vigil/notes/hot/f1", b'{"id": "n", "by": "x", "text": "t"}'),
        ("vigil/ack/" + KEY, DEEP),
        ("vigil/ack/" + KEY, b'{"by": "x", "episode": 1e999}'),
        ("vigil/ack/" + KEY, b'{"by": "x", "episode": "now"}'),
        ("vigil/ack/" + KEY, b'{"by": "x", "via": "fax"}'),
        ("vigil/ack/" + KEY, json.dumps({"by": "x", "note": "n" * 5000}).encode()),
        ("vigil/ack/" + KEY, b"[1, 2]"),
    ]


def test_hostile_notes_and_acknowledgements_leave_the_engine_alerting(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    for topic, payload in _hostile()[:3]:  # retained too: met at start-up
        probe.raw(topic, payload, retain=True)
    engine = _start(tmp_path, mosquitto, receiver, engine_process)
    probe.event("f1", 35.0)
    wait_for(lambda: _last(probe).get("state") == "firing", 20, "the firing state")
    for _ in range(3):
        for topic, payload in _hostile():
            probe.raw(topic, payload)
    probe.event("f1", 20.0)
    wait_for(lambda: _last(probe).get("state") == "cleared", 20, f"the cleared state: {_last(probe)}")
    state = _last(probe)
    assert state["acknowledged_by"] is None and state["notes"] == []  # nothing hostile was taken
    assert engine.proc is not None and engine.proc.poll() is None, engine.output()[-3000:]
    log = engine.output()
    assert "Traceback" not in log, log[-3000:]
    assert "ignoring a note on hot/f1/t0/temperature" in log and "ignoring an acknowledgement of" in log
    for topic, _ in _hostile()[:3]:
        probe.raw(topic, b"", retain=True)
    engine.stop()
    with sqlite3.connect(tmp_path / "alerts.db") as conn:
        assert [r.kind for r in ledger.entries(conn, kinds=ENGINE_KINDS)] == ["fired", "cleared"]
        assert ledger.verify(conn) == []
