"""The metrics of a real `vigil alerting` process on `--metrics-listen` (prometheus-client's server): the
engine's counts (events, refusals, transitions, deliveries, outbox, consuming), the process metrics, HEAD
without a body, and an over-long request line refused without a traceback."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto, free_port, raw_http

pytestmark = pytest.mark.integration

ENGINE_METRICS = ["vigil_alerting_events_total", "vigil_alerting_refused_total", "vigil_alerting_transitions_total",
                  "vigil_alerting_restarts_total", "vigil_alerting_consuming", "vigil_alerting_alerts_firing",
                  "vigil_alerting_receivers_failing", "vigil_alerting_outbox", "vigil_alerting_deliveries"]
PROCESS_METRICS = ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(r.read().decode())


def value(text: str, sample: str) -> Optional[float]:
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.rsplit(" ", 1)[0] == sample),
                None)


def test_engine_metrics_get_head_and_an_overlong_request_line(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, notify: ops}}
""")
    port = free_port()
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(tmp_path / "alerts.db"), "--metrics-listen", f"127.0.0.1:{port}"])
    engine.start()
    wait_for(lambda: "connected to the broker" in engine.output(), 30, "the engine to connect")
    text = scrape(port)
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert set(ENGINE_METRICS + PROCESS_METRICS) <= names, set(ENGINE_METRICS + PROCESS_METRICS) - names
    assert value(text, "vigil_alerting_consuming") == 1 and (value(text, "process_open_fds") or 0) > 3

    probe.event("d1", 35.0)
    wait_for(lambda: len(receiver.bodies) == 1, 30, "the firing notification")
    probe.event("d1", 20.0)
    probe.raw("vigil/events/d1/temperature", b"{not json")
    wait_for(lambda: len(receiver.bodies) == 2, 30, "the resolved notification")
    wait_for(lambda: value(scrape(port), 'vigil_alerting_deliveries{state="sent"}') == 2, 15, "2 deliveries sent")
    text = scrape(port)
    assert value(text, "vigil_alerting_events_total") == 2
    assert value(text, 'vigil_alerting_refused_total{reason="not an event"}') == 1
    assert value(text, 'vigil_alerting_transitions_total{state="firing"}') == 1
    assert value(text, 'vigil_alerting_transitions_total{state="resolved"}') == 1
    assert value(text, "vigil_alerting_outbox") == 0

    head, _, body = raw_http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").partition(
        b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200" and body == b"", head
    assert int(dict(h.split(b": ", 1) for h in head.split(b"\r\n")[1:])[b"Content-Length"]) > 1000
    answer = raw_http(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer == b"" or answer.split(b" ", 2)[1].startswith(b"4"), answer[:200]
    assert value(scrape(port), "vigil_alerting_consuming") == 1  # serving on
    engine.stop()
    log = engine.output()
    assert "Traceback" not in log and "Unhandled exception" not in log, log
