"""The whole chain under steady load through every fault of issue 8, with the counts checked at the end.

Agents at 5 readings a second each -> Mosquitto -> `vigil bridge` -> influxd, and `vigil alerting` ->
a local HTTP receiver. Every reading an agent numbered must be stored exactly once, every alert that
should fire notified exactly once, and none that should not.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge import EdgeAgent
from edge.config import load_edge_file
from tests.support.bridge import BridgeProcess, publish_many, reading
from tests.support.chain import (
    Chain,
    Dashboard,
    Hook,
    PersistentRecorder,
    check_counts,
    events_advanced,
    firing,
    latest,
    sleep,
    wait_connected,
)
from tests.support.services import Influxd, Mosquitto, wait_until
from vigil.core.clock import SystemClock

pytestmark = pytest.mark.integration

OUTAGE = 20.0
BACKOFF_CAP = 60.0  # vigil.core.backoff's cap: the longest a part waits between two tries
DASHBOARD_BACKOFF_CAP = 30.0  # the dashboard's (dashboard/feed.py)
COLD = ["cold-1", "cold-2"]
HOT = ["hot-1", "hot-2"]


def _start(chain: Chain) -> list[str]:
    chain.start()
    for d in COLD:
        chain.edge(d, base=4.0)
    for d in HOT:
        chain.edge(d, base=40.0)
    assert wait_until(lambda: chain.hook.titles() == Counter(firing(d) for d in HOT), 30), chain.hook.bodies
    return COLD + HOT


def test_broker_stopped_for_20s_loses_nothing_and_repeats_no_alert(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook, event_seqs: Any) -> None:
    chain = Chain(tmp_path, mosquitto, influxd, influx_db, hook)
    recorder = PersistentRecorder(mosquitto, "vigil/events/#", client_id="e2e-events")
    board = Dashboard(tmp_path / "dashboard", mosquitto, influxd.url(influx_db))
    try:
        devices = _start(chain)
        assert wait_until(lambda: board.firing() == {f"{d}/t0/temperature" for d in HOT}, 15), board.firing()
        mark = latest(recorder, event_seqs)
        mosquitto.stop()
        sleep(OUTAGE)
        mosquitto.start()
        assert wait_until(lambda: events_advanced(recorder, event_seqs, devices, mark), 60), \
            (latest(recorder, event_seqs), mark)
        # The rule engine is still there, and still alerts: a new hot device fires once.
        assert chain.engine.proc is not None and chain.engine.proc.poll() is None, \
            "vigil alerting exited when the broker went away:\n" + chain.engine.output()[-2500:]
        # It reconnects on its own backoff, not the bridge's: its retries double up to a minute apart, so
        # after 20 s away its next try can come 30 s after the broker is back, the bridge long back. Then
        # late-hot's 30 s, counted from the bridge's return, were nearly spent before the engine heard.
        wait_connected(chain.engine, times=2, timeout=BACKOFF_CAP + 10)
        chain.edge("late-hot", base=45.0)
        devices.append("late-hot")
        assert wait_until(lambda: chain.hook.titles()[firing("late-hot")] == 1, 30), chain.engine.output()[-3000:]
        check_counts(chain, recorder, event_seqs, devices, [*HOT, "late-hot"])
        # The dashboard reconnected too: it shows the alert raised after the outage, and the whole history. Its
        # own backoff (dashboard/feed.py, up to 30 s) may have its next try come well after the engine's.
        hot = {f"{d}/t0/temperature" for d in [*HOT, "late-hot"]}
        assert wait_until(lambda: board.firing() == hot, DASHBOARD_BACKOFF_CAP + 10), board.firing()
        stored = chain.stored()
        for d in devices:
            stats = board.get("/api/v1/history", device=d, sensor="t0", range="1h")["stats"]
            assert stats["count"] == stored[d], (d, stats, stored[d])
        assert "Traceback" not in board.proc.output(), board.proc.output()[-3000:]
    finally:
        board.stop()
        recorder.close()
        chain.close()


def test_store_and_receiver_down_20s_then_each_process_killed_loses_nothing(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, hook: Hook, event_seqs: Any) -> None:
    db = private_influxd.create_database("vigil")
    chain = Chain(tmp_path, mosquitto, private_influxd, db, hook)
    recorder = PersistentRecorder(mosquitto, "vigil/events/#", client_id="e2e-events")
    try:
        devices = _start(chain)

        # influxd and the notification receiver are both down for 20 s, and a new alert fires meanwhile.
        spooled_before = chain.bridge.metric("vigil_bridge_spooled_total") or 0
        hook.down()
        private_influxd.stop()
        chain.edge("late-hot", base=45.0)
        devices.append("late-hot")
        sleep(OUTAGE)
        private_influxd.start()
        hook.up()
        assert (chain.bridge.metric("vigil_bridge_spooled_total") or 0) > spooled_before
        assert wait_until(lambda: chain.hook.titles()[firing("late-hot")] == 1, 30), chain.engine.output()[-3000:]
        assert wait_until(lambda: chain.bridge.metric("vigil_bridge_spool_events") == 0, 60)

        # SIGKILL and restart: the bridge, then the rule engine, then an agent.
        mark = latest(recorder, event_seqs)
        chain.bridge.kill()
        sleep(2)
        chain.bridge.start()
        chain.engine.kill()
        sleep(2)
        chain.engine.start()
        wait_connected(chain.engine, times=2)
        assert wait_until(lambda: events_advanced(recorder, event_seqs, devices, mark), 60)
        chain.kill_edge("hot-1")
        sleep(1)
        chain.restart_edge("hot-1")
        mark = latest(recorder, event_seqs)
        assert wait_until(lambda: events_advanced(recorder, event_seqs, devices, mark), 60)
        check_counts(chain, recorder, event_seqs, devices, [*HOT, "late-hot"])
    finally:
        recorder.close()
        chain.close()


def test_a_full_spool_drops_the_oldest_counts_them_and_loses_nothing_else(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd) -> None:
    db = private_influxd.create_database("vigil")
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump({"bridge": {"spool_max_events": 300}}))
    bridge = BridgeProcess(mosquitto, private_influxd.url(db), tmp_path / "bridge",
                           extra=["-c", str(tmp_path / "vigil.yaml")])
    t0 = time.time() - 1200
    try:
        bridge.start()
        private_influxd.stop()
        for batch in range(10):  # 1,000 readings in ten batches while the store is down
            publish_many(mosquitto, [("vigil/readings/dev/t0", reading(float(i % 30), t0 + i, seq=i))
                                     for i in range(batch * 100, batch * 100 + 100)])
            sleep(0.1)
        assert wait_until(lambda: bridge.metric("vigil_bridge_spooled_total") == 1000, 30)
        private_influxd.start()
        assert wait_until(lambda: bridge.metric("vigil_bridge_spool_events") == 0, 60)
        dropped = int(bridge.metric("vigil_bridge_spool_dropped_total") or 0)
        res = private_influxd.query('SELECT "value" FROM "temperature"', db=db)
        rows = res["results"][0].get("series", [{}])[0].get("values", [])
        offsets = sorted(round(_epoch(r[0]) - t0) for r in rows)
    finally:
        bridge.stop()
    assert dropped > 0 and offsets
    assert dropped + len(offsets) == 1000
    # The oldest were dropped; the rest are the newest, without a gap.
    assert offsets == list(range(1000 - len(offsets), 1000))


class SkewedClock(SystemClock):
    """The device's clock, ``offset`` seconds wrong."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("mode", ["refuse", "receive_time"])
def test_an_agent_an_hour_wrong_is_refused_or_corrected_as_configured(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, mode: str) -> None:
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump(
        {"bridge": {"implausible_ts": mode, "max_future": "5m", "max_age": "10m"}}))
    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge",
                           extra=["-c", str(tmp_path / "vigil.yaml")])
    dead = PersistentRecorder(mosquitto, "vigil/deadletter/#", client_id="e2e-dead")
    agents = []
    try:
        bridge.start()
        for device, offset in (("ahead", 3600.0), ("behind", -3600.0), ("right", 0.0)):
            path = tmp_path / f"{device}.yaml"
            path.write_text(yaml.safe_dump({
                "device": device, "interval": 0.2, "mqtt": {"url": mosquitto.url},
                "buffer": {"path": str(tmp_path / device)},
                "sensors": [{"name": "t0", "type": "simulated", "base": 5.0}]}))
            agent = EdgeAgent(load_edge_file(str(path)), clock=SkewedClock(offset))
            agent.start()
            agents.append(agent)
        started = time.time()
        sleep(3)
        for agent in agents:
            agent.stop()
        ended = time.time()
        produced = {a.config.device: a.queue.last_seq("t0") for a in agents if a.queue is not None}
        assert all(v is not None and v >= 5 for v in produced.values()), produced
        n = {d: int(v) + 1 for d, v in produced.items() if v is not None}
        assert wait_until(lambda: (bridge.metric("vigil_bridge_received_total") or 0) >= sum(n.values()), 20)
        sleep(0.5)
        res = influxd.query('SELECT "value", "device" FROM "temperature"', db=influx_db)
        rows = res["results"][0].get("series", [{}])[0].get("values", [])
        by_device = Counter(r[2] for r in rows)
        if mode == "refuse":
            assert by_device == Counter({"right": n["right"]})
            letters = [m.json() for m in dead.messages]
            reasons = Counter(letter["reason"] for letter in letters)
            assert reasons == Counter({"ts_future": n["ahead"], "ts_past": n["behind"]}), reasons
            assert all("ahead of receive time" in letter["detail"] for letter in letters
                       if letter["reason"] == "ts_future"), letters[:2]
        else:
            assert by_device == Counter(n)
            assert not dead.messages
            # Stored at the time the bridge received them, not an hour off.
            times = [_epoch(r[0]) for r in rows]
            assert all(started - 5 <= t <= ended + 5 for t in times), (started, ended, min(times), max(times))
            # ... and said so: counted, and each device named in the log.
            assert bridge.metric("vigil_bridge_corrected_ts_total") == n["ahead"] + n["behind"]
            log = bridge.log.read_text(errors="replace")
            assert "ahead" in log and "behind" in log, log[-2000:]
    finally:
        for agent in agents:
            agent.stop()
        dead.close()
        bridge.stop()


def _epoch(rfc3339: str) -> float:
    """influxd's RFC 3339 time (nanoseconds) as epoch seconds."""
    whole, _, frac = rfc3339.rstrip("Z").partition(".")
    start = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return start.timestamp() + float(f"0.{frac or 0}")


def test_a_corrected_timestamp_is_said_so(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str) -> None:
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump({"bridge": {"implausible_ts": "receive_time"}}))
    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge",
                           extra=["-c", str(tmp_path / "vigil.yaml")])
    try:
        bridge.start()
        publish_many(mosquitto, [("vigil/readings/ahead/t0", reading(5.0, time.time() + 3600, seq=i))
                                 for i in range(3)])
        assert wait_until(lambda: bridge.metric("vigil_bridge_stored_total") == 3, 10)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{bridge.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        said = [line for line in text.splitlines() if not line.startswith("#") and line.endswith(" 3")
                and any(w in line for w in ("corrected", "receive_time", "implausible", "ts_"))]
        logged = "receive time" in bridge.log.read_text() and "ahead" in bridge.log.read_text()
        assert said or logged, text
    finally:
        bridge.stop()
