"""`vigil calibration set|clear|history` as real processes, with a real `vigil bridge` on the private Mosquitto."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bridge import VIGIL, BridgeProcess, publish_many, reading
from tests.support.services import Mosquitto, wait_until
from vigil.core.event import SeriesKey
from vigil.core.stores import open_store

SERIES = "freezer-1/t0/temperature"


def vigil(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "calibration", *argv], capture_output=True, text=True, timeout=60)


def test_set_then_history_then_clear(mosquitto: Mosquitto, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {data}\nmqtt:\n  url: {mosquitto.url}\n")
    bridge = BridgeProcess(mosquitto, f"sqlite:///{tmp_path}/vigil.db", data, extra=["-c", str(config)])
    bridge.start()
    try:
        done = vigil("set", "-c", str(config), SERIES, "--points=-18.2:-18,0.4:0", "--by", "alice",
                     "--note", "ice bath and freezer reference")
        assert done.returncode == 0 and "two points" in done.stdout, done.stderr
        journal = data / "bridge-calibration.jsonl"
        assert wait_until(lambda: "alice" in journal.read_text(), 10), bridge.log.read_text()
        now = time.time()
        publish_many(mosquitto, [("vigil/readings/freezer-1/t0", reading(-18.2, now, seq=1))])
        with open_store(f"sqlite:///{tmp_path}/vigil.db") as store:
            key = SeriesKey("temperature", "freezer-1", "t0")
            assert wait_until(lambda: bool(store.query(key, now - 1, now + 1)), 10)
            assert store.query(key, now - 1, now + 1)[0].value == pytest.approx(-18.0)
            assert store.query(key, now - 1, now + 1, field="raw")[0].value == -18.2
        assert vigil("clear", "-c", str(config), SERIES, "--by", "bob").returncode == 0
        assert wait_until(lambda: "bob" in (data / "bridge-calibration.jsonl").read_text(), 10)
    finally:
        bridge.stop()
    history = vigil("history", "-c", str(config))
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert len(lines) == 2 and "alice via mqtt" in lines[0] and "cleared" in lines[1] and "by bob" in lines[1], lines
    at = vigil("history", "-c", str(config), "--series", SERIES, "--at", str(now), "--json")
    assert json.loads(at.stdout)["calibration"] == {"points": [[-18.2, -18.0], [0.4, 0.0]]}


@pytest.mark.parametrize(("argv", "words"), [
    (["set", "freezer-1/t0", "--offset", "1"], "device/sensor/metric"),
    (["set", SERIES, "--points=1:0,1:5"], "same raw value"),
    (["set", SERIES, "--points=1:0"], "exactly two"),
    (["set", SERIES, "--points=a:b,c:d"], "RAW:REF"),
    (["set", SERIES, "--offset", "nan"], "finite"),
    (["set", SERIES], "either offset"),
    (["history", "--series", SERIES, "--at", "yesterday"], "ISO 8601"),
    (["history", "--series", SERIES, "--at", "2026-12-01T08:00:00"], "UTC offset"),
])
def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path, argv: list[str], words: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bridge-calibration.jsonl").write_text("")
    done = vigil(*argv, "--data-dir", str(tmp_path / "data"), "--broker", "mqtt://127.0.0.1:9")
    assert done.returncode == 2 and words in done.stderr, (done.stdout, done.stderr)
