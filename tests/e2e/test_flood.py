"""A flood: one device at 100 times the normal rate (500 readings a second, from the C mosquitto_pub) while
the other agents run at their normal 5 a second. The others' readings are all stored, a new alert
among them still arrives within seconds, the bridge's memory stays bounded, and its counters show the
flood.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge import BridgeProcess, influx_count
from tests.support.chain import Chain, Hook, PersistentRecorder, check_counts, firing, sleep
from tests.support.services import Influxd, Mosquitto, wait_until

pytestmark = pytest.mark.integration

NORMAL_INTERVAL = 0.2
FLOOD_RATE = 100 / NORMAL_INTERVAL  # readings a second
FLOOD_SECONDS = 10


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Flood:
    """mosquitto_pub -l fed one reading a line at a fixed rate, from a thread."""

    def __init__(self, broker: Mosquitto, device: str, rate: float, seconds: float) -> None:
        self.total = int(rate * seconds)
        self.rate = rate
        self.proc = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                      "-t", f"vigil/readings/{device}/t0", "-l"], stdin=subprocess.PIPE)
        self.thread = threading.Thread(target=self._feed, name="e2e-flood")
        self.thread.start()

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        start = time.monotonic()
        t0 = time.time()
        for i in range(self.total):
            line = json.dumps({"value": 5.0 + (i % 7) / 10, "ts": t0 + i / self.rate, "unit": "°C", "seq": i})
            self.proc.stdin.write(line.encode() + b"\n")
            if i % 50 == 49:
                self.proc.stdin.flush()
                ahead = (i + 1) / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        self.proc.stdin.close()

    def join(self) -> None:
        self.thread.join(FLOOD_SECONDS * 3)
        assert self.proc.wait(30) == 0


def test_one_device_at_100x_does_not_starve_the_others(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook, event_seqs: Any) -> None:
    chain = Chain(tmp_path, mosquitto, influxd, influx_db, hook)
    recorder = PersistentRecorder(mosquitto, "vigil/events/#", client_id="e2e-events")
    late = PersistentRecorder(mosquitto, "vigil/readings/late-hot/#", client_id="e2e-late")
    flood = None
    try:
        chain.start()
        devices = ["cold-1", "cold-2", "hot-1"]
        for d, base in zip(devices, (4.0, 4.0, 40.0)):
            chain.edge(d, base=base, interval=NORMAL_INTERVAL)
        assert wait_until(lambda: hook.titles() == Counter([firing("hot-1")]), 30), hook.bodies
        assert chain.bridge.proc is not None
        pid = chain.bridge.proc.pid
        rss_before = rss_kib(pid)
        received_before = chain.bridge.metric("vigil_bridge_received_total") or 0

        flood = Flood(mosquitto, "flood", FLOOD_RATE, FLOOD_SECONDS)
        sleep(FLOOD_SECONDS / 4)
        # A new alert in the middle of the flood: from its first reading to the notification.
        chain.edge("late-hot", base=45.0, interval=NORMAL_INTERVAL)
        devices.append("late-hot")
        assert wait_until(lambda: hook.titles()[firing("late-hot")] == 1, 30)
        notified = time.time()
        first_ts = min(m.json()["ts"] for m in late.messages)
        latency = notified - first_ts
        flood.join()
        rss_peak = rss_kib(pid)

        assert latency < 5.0, f"alert latency under flood {latency:.2f} s"
        assert wait_until(lambda: influx_counts_flood(chain) == flood.total, 60), \
            (influx_counts_flood(chain), flood.total)
        received = (chain.bridge.metric("vigil_bridge_received_total") or 0) - received_before
        assert received >= flood.total, (received, flood.total)
        # Bounded: the flood's readings went through without the bridge keeping them.
        assert rss_peak - rss_before < 60 * 1024, (rss_before, rss_peak)
        check_counts(chain, recorder, event_seqs, devices, ["hot-1", "late-hot"], others={"flood": flood.total})
    finally:
        if flood is not None and flood.proc.poll() is None:
            flood.proc.kill()
            flood.proc.wait(5)
        if flood is not None:
            flood.thread.join(5)
        late.close()
        recorder.close()
        chain.close()


def influx_counts_flood(chain: Chain) -> int:
    return chain.stored().get("flood", 0)


def test_a_backlog_after_a_bridge_outage_is_drained_in_bounded_memory(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str) -> None:
    """A bridge away while 100 devices send 30,000 readings takes them back without holding them all."""
    from bench.bridge import publish_backlog

    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge")
    bridge.start()
    bridge.stop()  # its persistent session exists: the broker queues for it
    n = 30_000
    publish_backlog(mosquitto, n, 100, 0, tmp_path)
    try:
        bridge.start()
        assert bridge.proc is not None
        idle_kib = rss_kib(bridge.proc.pid)
        assert wait_until(lambda: influx_count(influxd, influx_db) == n, 120), influx_count(influxd, influx_db)
        peak_kib = peak_rss_kib(bridge.proc.pid)
    finally:
        bridge.stop()
    # Mosquitto 2.0.11 sends past the bridge's receive maximum once acknowledgements flow; the bridge
    # stops reading its socket while 4 x batch_size messages wait (broker_bridge/link.py).
    print(f"bridge RSS {idle_kib // 1024} MB at start, peak {peak_kib // 1024} MB")
    assert peak_kib - idle_kib < 100 * 1024, f"RSS {idle_kib // 1024} MB idle, peak {peak_kib // 1024} MB"


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")
