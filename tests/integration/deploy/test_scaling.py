"""docs/scaling.md on one machine: two bridges in a shared subscription group and two rule-engine
instances partitioned by series, all real `vigil` processes against one Mosquitto and one influxd.

Every reading must be stored once and republished once, and every alert notified once, by the
instance that owns its series.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.partition import owns
from tests.support.mqttclient import Session
from tests.support.procs import VIGIL, Receiver, VigilProcess
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

pytestmark = pytest.mark.integration

DEVICES = [f"cold-{i:02d}" for i in range(12)]
READINGS_PER_DEVICE = 15


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_two_bridges_and_two_rule_engines_store_and_notify_each_thing_once(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, receiver: Receiver,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""\
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - name: too-warm
    match: {{metric: temperature}}
    above: 5
    severity: warning
    notify: ops
    message: "{{{{ device }}}} is at {{{{ value }}}} °C"
""")
    store = influxd.url(influx_db)
    metrics = [free_port(), free_port()]
    procs: list[VigilProcess] = []
    try:
        for i, name in enumerate(("a", "b")):
            (tmp_path / f"bridge-{name}").mkdir()
            procs.append(VigilProcess(
                [VIGIL, "bridge", "--broker", mosquitto.url, "--store", store, "--shared-group", "bridges",
                 "--client-id", f"vigil-bridge-{name}", "--data-dir", str(tmp_path / f"bridge-{name}"),
                 "--metrics-listen", f"127.0.0.1:{metrics[i]}"],
                tmp_path / f"bridge-{name}.log", cwd=tmp_path))
        for i in range(2):
            procs.append(VigilProcess(
                [VIGIL, "alerting", "--broker", mosquitto.url, "--store", store, "--rules", str(rules),
                 "--state", str(tmp_path / f"alerts-{i}.db"), "--partition", f"{i}/2",
                 "--client-id", f"vigil-alerting-{i}"],
                tmp_path / f"alerting-{i}.log", cwd=tmp_path))
        assert wait_until(lambda: all("connected" in p.output() for p in procs), timeout=30), \
            "\n".join(p.output()[-1500:] for p in procs)

        watcher = Session(mosquitto.port, None, None)
        device = Session(mosquitto.port, None, None)
        try:
            assert not watcher.connect().is_failure and not device.connect().is_failure
            watcher.subscribe("vigil/events/#")
            watcher.subscribe("vigil/alerts/#")
            t0 = time.time() - 60
            for seq in range(READINGS_PER_DEVICE):
                for d in DEVICES:
                    reading = {"value": 6.0 + seq / 10, "ts": t0 + seq, "unit": "°C", "seq": seq}
                    assert not device.publish(f"vigil/readings/{d}/t0", json.dumps(reading).encode()).is_failure
            total = len(DEVICES) * READINGS_PER_DEVICE

            def events() -> list[tuple[str, int]]:
                watcher.pump_for(0.05)
                return [(json.loads(m.payload)["device"], json.loads(m.payload)["seq"])
                        for m in watcher.messages if m.topic.startswith("vigil/events/")]

            assert wait_until(lambda: len(events()) >= total, timeout=30), f"{len(events())} of {total} events"
            watcher.pump_for(1.0)  # a duplicate, if any, would arrive now
            republished = events()
            assert sorted(republished) == sorted((d, s) for d in DEVICES for s in range(READINGS_PER_DEVICE))

            # Stored once each, and both bridges did part of the work.
            assert wait_until(lambda: _count(influxd, influx_db) == total, timeout=20)
            stored = [_stored(port) for port in metrics]
            assert sum(stored) == total and all(n > 0 for n in stored), stored

            # Notified once each, by the instance that owns the series.
            assert wait_until(lambda: len(receiver.bodies) >= len(DEVICES), timeout=30), receiver.bodies
            time.sleep(1.5)  # a second notification, if any, would arrive now
            titles = Counter(b["title"] for b in receiver.bodies)
            assert titles == Counter(f"[FIRING warning] too-warm {d}/t0/temperature" for d in DEVICES)
            for i in range(2):
                with sqlite3.connect(tmp_path / f"alerts-{i}.db") as conn:
                    series = {r[0] for r in conn.execute("SELECT series FROM alert_state")}
                assert series == {f"{d}/t0/temperature" for d in DEVICES if owns(f"{d}/t0/temperature", (i, 2))}
                assert series, f"instance {i}/2 owns no series: choose other device names"
        finally:
            watcher.close()
            device.close()
    finally:
        for p in procs:
            p.stop()


def _count(server: Influxd, db: str) -> int:
    result = server.query("SELECT count(value) FROM temperature", db=db)["results"][0]
    return int(result["series"][0]["values"][0][1]) if "series" in result else 0


def _stored(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(r"^vigil_bridge_stored_total (\d+)", text, flags=re.MULTILINE)
    assert match, text[:1000]
    return int(match.group(1))
