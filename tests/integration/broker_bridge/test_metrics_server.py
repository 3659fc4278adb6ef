"""The metrics of a real `vigil bridge` process, served by prometheus-client's server: GET, HEAD,
an over-long request line, and the bridge working on through all of it."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from tests.support.bridge import BridgeProcess, publish_many, reading
from tests.support.services import Mosquitto, raw_http, wait_until

BRIDGE_METRICS = ["vigil_bridge_received_total", "vigil_bridge_stored_total", "vigil_bridge_republished_total",
                  "vigil_bridge_refused_total", "vigil_bridge_restarts_total", "vigil_bridge_store_seconds_total",
                  "vigil_bridge_store_batches_total", "vigil_bridge_lag_seconds", "vigil_bridge_spool_events",
                  "vigil_bridge_inbox_messages", "vigil_bridge_consuming", "vigil_bridge_suspects"]
PROCESS_METRICS = ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"]


def test_get_head_and_an_overlong_request_line(mosquitto: Mosquitto, tmp_path: Path) -> None:
    bridge = BridgeProcess(mosquitto, f"sqlite:///{tmp_path / 'vigil.db'}", tmp_path / "bridge")
    bridge.start()
    try:
        port = bridge.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
        names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        assert set(BRIDGE_METRICS + PROCESS_METRICS) <= names, set(BRIDGE_METRICS + PROCESS_METRICS) - names
        assert bridge.metric("vigil_bridge_consuming") == 1
        assert (bridge.metric("process_open_fds") or 0) > 3

        head, _, body = raw_http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").partition(
            b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
        assert int(dict(h.split(b": ", 1) for h in head.split(b"\r\n")[1:])[b"Content-Length"]) > 1000
        assert body == b""

        answer = raw_http(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer == b"" or answer.split(b" ", 2)[1].startswith(b"4"), answer[:200]
        assert raw_http(port, b"GET /other HTTP/1.0\r\n\r\n").split(b" ", 2)[1] == b"404"
        assert raw_http(port, b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n").split(b" ", 2)[1] == b"405"

        # the bridge works on, and so does its metrics server
        publish_many(mosquitto, [("vigil/readings/pi-1/t0", reading(21.5, time.time() - 5, seq=1)),
                                 ("vigil/readings/pi-1/t0", b"{not json")])
        assert wait_until(lambda: bridge.metric("vigil_bridge_stored_total") == 1, 20), bridge.log.read_text()
        assert wait_until(lambda: bridge.metric('vigil_bridge_refused_total{reason="json"}') == 1, 20)
        assert bridge.metric("vigil_bridge_restarts_total") == 0
    finally:
        bridge.stop()
    log = bridge.log.read_text()
    assert "Traceback" not in log and "Unhandled exception" not in log, log
