"""Calibration through the real processes: `vigil bridge` on a private Mosquitto, storing into SQLite or
influxd; calibrations from vigil.yaml and from retained messages on vigil/calibration/..., hostile ones refused."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge import VIGIL, BridgeProcess, publish_many, reading
from tests.support.services import Influxd, Mosquitto, wait_until
from vigil.core.calibration import JOURNAL_NAME, CalibrationJournal
from vigil.core.event import SeriesKey
from vigil.core.stores import open_store

SERIES = SeriesKey("temperature", "freezer-1", "t0")
TOPIC = "vigil/calibration/freezer-1/t0/temperature"


def change(at: float, **body: Any) -> bytes:
    return json.dumps({"by": "alice", "at": at, "note": "ice bath", **body}).encode()


def _store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/vigil.db"
    influxd: Influxd = request.getfixturevalue("influxd")
    return influxd.url(request.getfixturevalue("influx_db"))


@pytest.mark.parametrize("kind", ["sqlite", "influxdb1"])
def test_config_then_a_retained_change_calibrate_the_next_readings_and_raw_is_kept(
        kind: str, mosquitto: Mosquitto, tmp_path: Path, request: pytest.FixtureRequest,
        recorder_factory: Any) -> None:
    url = _store_url(kind, tmp_path, request)
    config = tmp_path / "vigil.yaml"
    config.write_text("bridge:\n  calibration:\n    freezer-1/t0/temperature: {offset: -0.5}\n")
    events = recorder_factory("vigil/events/#")
    dead = recorder_factory("vigil/deadletter/calibration")
    bridge = BridgeProcess(mosquitto, url, tmp_path / "data", extra=["-c", str(config)])
    bridge.start()
    now = time.time()
    try:
        publish_many(mosquitto, [("vigil/readings/freezer-1/t0", reading(-17.0, now - 30, seq=1)),
                                 ("vigil/readings/freezer-2/t0", reading(-17.0, now - 30, seq=1))])
        assert wait_until(lambda: len(events.messages) >= 2, 10), bridge.log.read_text()
        # the dashboard's change, retained; hostile ones beside it are refused and change nothing
        publish_many(mosquitto, [(TOPIC, change(now, points=[[-20.0, -20.5], [0.0, 1.0]])),
                                 ("vigil/calibration/freezer-1/t0", change(now - 19, offset=5)),
                                 ("vigil/calibration/freezer-1/t0/humidity", b"{" * 5000),
                                 ("vigil/calibration/freezer-1/t1/temperature", change(now - 19, offset=float("nan"))
                                  .replace(b"NaN", b"NaN")),
                                 ("vigil/calibration/freezer-1/t2/temperature", change(now + 86400, offset=1)),
                                 ("vigil/calibration/freezer-1/t3/temperature", b"\xff\xfe"),
                                 ("vigil/readings/freezer-1/t0", reading(-8.5, now - 10, seq=2))], retain=True)
        assert wait_until(lambda: len(events.messages) >= 3 and len(dead.messages) >= 5, 10), bridge.log.read_text()
        assert bridge.proc is not None and bridge.proc.poll() is None
    finally:
        bridge.stop()
    got = [(e["device"], e["value"], e.get("raw")) for _, e in events.json()]
    assert got[0] == ("freezer-1", pytest.approx(-17.5), -17.0)
    assert got[1] == ("freezer-2", -17.0, None)
    assert got[2] == ("freezer-1", pytest.approx(-8.1375), -8.5)  # -20.5 + (-8.5 + 20) * 21.5/20
    reasons = [json.loads(p)["detail"] for _, p in dead.messages]
    assert any("device/sensor/metric" in r for r in reasons) and any("future" in r for r in reasons), reasons
    with open_store(url) as store:
        assert [p.value for p in store.query(SERIES, now - 60, now)] == [pytest.approx(-17.5), pytest.approx(-8.1375)]
        assert [p.value for p in store.query(SERIES, now - 60, now, field="raw")] == [-17.0, -8.5]
    journal = CalibrationJournal(tmp_path / "data" / JOURNAL_NAME)
    history = [(c.origin, c.by, c.correction and c.correction.describe()) for c in journal.history()]
    assert history == [("config", "vigil.yaml", "offset -0.5"),
                       ("mqtt", "alice", "two points: raw -20 -> -20.5, raw 0 -> 1")]
    assert journal.in_force(SERIES.id, now - 0.001).correction.offset == -0.5  # type: ignore[union-attr]
    assert journal.in_force(SERIES.id, now).correction.points is not None  # type: ignore[union-attr]


def test_a_restarted_bridge_keeps_the_latest_change(mosquitto: Mosquitto, tmp_path: Path,
                                                    recorder_factory: Any) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("bridge:\n  calibration:\n    freezer-1/t0/temperature: {offset: -0.5}\n")
    url = f"sqlite:///{tmp_path}/vigil.db"
    events = recorder_factory("vigil/events/#")
    bridge = BridgeProcess(mosquitto, url, tmp_path / "data", extra=["-c", str(config)])
    bridge.start()
    now = time.time()  # after the start, when the change from vigil.yaml was recorded
    try:
        publish_many(mosquitto, [(TOPIC, change(now, offset=1.0))], retain=True)
        assert wait_until(lambda: (tmp_path / "data" / JOURNAL_NAME).read_text().count("\n") == 2, 10)
    finally:
        bridge.stop()
    bridge.start()  # the retained message comes again; vigil.yaml is unchanged: the change from MQTT stays
    try:
        publish_many(mosquitto, [("vigil/readings/freezer-1/t0", reading(-17.0, now - 5, seq=1))])
        assert wait_until(lambda: len(events.messages) >= 1, 10), bridge.log.read_text()
    finally:
        bridge.stop()
    assert events.json()[0][1]["value"] == -16.0
    assert (tmp_path / "data" / JOURNAL_NAME).read_text().count("\n") == 2


@pytest.mark.parametrize(("yaml_text", "words"), [
    ("freezer-1/t0/temperature: {points: [[1, 0], [1, 5]]}", "same raw value"),
    ("freezer-1/t0/temperature: {points: [[0, 0], [1, 1], [2, 2]]}", "exactly two"),
    ("freezer-1/t0/temperature: {offset: .nan}", "finite"),
    ("freezer-1/t0/temperature: {offset: 1e400}", "finite"),
    ("freezer-1/t0/temperature: {ofset: 1}", "ofset: unknown key"),
    ("freezer-1/t0: {offset: 1}", "device/sensor/metric"),
    ("freezer-1/t0/temperature: warm", "expected a mapping"),
])
def test_vigil_config_check_refuses_bad_calibrations(tmp_path: Path, yaml_text: str, words: str) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(f"bridge:\n  calibration:\n    {yaml_text}\n")
    done = subprocess.run([VIGIL, "config", "check", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "vigil.yaml:3: bridge.calibration." in out and re.search(words, out), out
