"""The engine's own read path (alerting/mqttread.py) against a real Mosquitto and a real `vigil alerting`:
a backlog is taken in whole (exact counts), an engine killed (SIGKILL) while a batch is in hand loses
nothing and records each transition once when the broker delivers again what it had not acknowledged,
and hostile payloads (garbage, over the size limits) are refused without stopping or disconnecting it."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from alerting.inhand import marked
from alerting.mqttread import MAX_PACKET
from tests.support.alerting import EngineProcess, wait_for
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

RULES = "rules:\n  - {name: hot, match: {metric: temperature}, above: 30}\n"


def event(device: str, value: float, ts: float) -> bytes:
    return json.dumps({"device": device, "sensor": "t0", "metric": "temperature", "value": value, "ts": ts,
                       "unit": "°C"}).encode()


def publisher(broker: Mosquitto) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"backlog-{time.time()}")
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def fired(state: Path) -> dict[str, int]:
    """'fired' rows in the engine's ledger, by alert key."""
    try:
        with sqlite3.connect(state, timeout=1) as conn:
            return dict(conn.execute("SELECT key, count(*) FROM ledger WHERE kind = 'fired' GROUP BY key"))
    except sqlite3.Error:
        return {}


def in_hand(marks: Path) -> bool:
    return bool(marked(marks))


def backlog(broker: Mosquitto, devices: int, per: int) -> None:
    """``per`` events for each device, interleaved; device d crosses 30 at its event d % per and stays above,
    so transitions are spread over the whole backlog."""
    pub = publisher(broker)
    now = time.time() - per
    info = None
    for k in range(per):
        for d in range(devices):
            info = pub.publish(f"vigil/events/dev-{d}/temperature", event(f"dev-{d}", 35.0 if k >= d % per else 20.0,
                                                                             now + k), qos=1)
    assert info is not None
    info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def test_a_backlog_is_taken_in_whole_and_an_engine_killed_mid_batch_records_each_transition_once(
        tmp_path: Path, mosquitto: Mosquitto, engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    state, marks = tmp_path / "alerts.db", tmp_path / "alerts.poison.db"
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(state), "--client-id", "read-path"])
    engine.start()
    wait_for(lambda: "caught up with the backlog" in engine.output(), 30, "the engine to connect")
    engine.stop()  # its session stays: the backlog waits for it
    devices, per = 2000, 10
    backlog(mosquitto, devices, per)
    engine.start()
    deadline = time.monotonic() + 60
    while not (in_hand(marks) and 0 < len(fired(state)) < devices) and time.monotonic() < deadline:
        time.sleep(0.001)
    engine.kill()  # SIGKILL with a batch in hand: it was neither committed nor acknowledged
    killed_at = len(fired(state))
    assert 0 < killed_at < devices, f"killed with {killed_at} fired: not in the middle of the backlog"
    engine.start()
    wait_for(lambda: len(fired(state)) == devices, 120, f"every device to fire; {len(fired(state))} did")
    time.sleep(1)  # nothing more comes
    counts = fired(state)
    assert set(counts) == {f"hot/dev-{d}/t0/temperature" for d in range(devices)}
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n != 1}
    log = engine.output()
    assert "refused" not in log, log[-3000:]
    assert "what is not MQTT" not in log, log[-3000:]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_hostile_payloads_are_refused_and_the_engine_goes_on_without_reconnecting(
        tmp_path: Path, mosquitto: Mosquitto, engine_process: Callable[[list[str]], EngineProcess],
        protocol: str) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "vigil.yaml").write_text(f'mqtt: {{url: "{mosquitto.url}", protocol: "{protocol}"}}\n')
    state = tmp_path / "alerts.db"
    engine = engine_process(["alerting", "-c", str(tmp_path / "vigil.yaml"), "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(state), "--client-id", f"read-hostile-{protocol}"])
    engine.start()
    wait_for(lambda: "caught up with the backlog" in engine.output(), 30, "the engine to connect")
    pub = publisher(mosquitto)
    hostile = [b"", b"\x00\xff" * 50, b"{" * 10000, b'{"value": "NaN"}', bytes(range(256)),
               b"x" * (70 * 1024),  # over the engine's 64 KiB limit for a payload
               b"y" * (MAX_PACKET + 1000)]  # over the reader's packet limit: thrown away as it comes
    now = time.time()
    for i in range(300):
        pub.publish(f"vigil/events/ok-{i}/temperature", event(f"ok-{i}", 35.0, now), qos=1)
        pub.publish(f"vigil/events/bad-{i}/temperature", hostile[i % len(hostile)], qos=1)
    pub.publish("vigil/events/last/temperature", event("last", 35.0, now), qos=1).wait_for_publish(30)
    pub.loop_stop()
    pub.disconnect()
    wait_for(lambda: len(fired(state)) == 301, 60, f"every good event to fire; {len(fired(state))} did")
    log = engine.output()
    assert log.count("connected to the broker") == 1, log[-3000:]  # no reconnect
    assert "refused a message on 'vigil/events/bad-6/temperature' (too large)" in log, log[-3000:]
    assert "refused a message on 'vigil/events/bad-5/temperature' (too large)" in log, log[-3000:]
    assert engine.proc is not None and engine.proc.poll() is None
