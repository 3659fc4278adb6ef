"""The metrics of a real `vigil alerting` process on `--metrics-listen` (prometheus-client's server): the
engine's counts (events, refusals, transitions, deliveries, outbox, consuming), the process metrics, HEAD
without a body, and an over-long request line refused without a traceback."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.postgres import Postgres
from tests.support.services import Mosquitto, free_port, raw_http

pytestmark = pytest.mark.integration

ENGINE_METRICS = ["vigil_alerting_events_total", "vigil_alerting_refused_total", "vigil_alerting_transitions_total",
                  "vigil_alerting_restarts_total", "vigil_alerting_consuming", "vigil_alerting_alerts_firing",
                  "vigil_alerting_receivers_failing", "vigil_alerting_outbox", "vigil_alerting_deliveries"]
PROCESS_METRICS = ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"]


def write_rules(tmp_path: Path, receiver: Receiver) -> None:
    """One rule, hot above 30, told to the receiver at once."""
    (tmp_path / "rules.yaml").write_text(f"""
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, notify: ops}}
""")


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
    write_rules(tmp_path, receiver)
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


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of the samples of metric ``name`` (labels as written, ``""`` for none)."""
    out = {}
    for line in text.splitlines():
        sample, _, v = line.rpartition(" ")
        metric, _, labels = sample.partition("{")
        if metric == name:
            out[labels.rstrip("}")] = float(v)
    return out


def test_engines_sharing_a_postgresql_state_each_show_the_partitions_they_hold(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver, pg_url: str, postgres: Postgres,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    """Two members on one PostgreSQL, each with --metrics-listen: each shows the partitions it holds (a sample per
    partition's engine), the deployment's deliveries counted in the shared tables; a killed member's partitions
    show on the survivor; with the database taking no connection, a scrape answers within seconds (without the
    shared counts)."""
    write_rules(tmp_path, receiver)
    ports = [free_port(), free_port()]
    engines = []
    for i, port in enumerate(ports):
        engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                                 "--state", pg_url, "--client-id", "vigil-alerting", "--data-dir",
                                 str(tmp_path / f"data-{i}"), "--metrics-listen", f"127.0.0.1:{port}"])
        engine.start()
        engines.append(engine)

    def held() -> list[dict[str, float]]:
        try:
            return [samples(scrape(port), "vigil_alerting_consuming") for port in ports]
        except OSError:  # not serving yet (URLError is one)
            return []

    # four partitions, two a member: each partition's engine shows on the member that holds it, once
    wait_for(lambda: [len(h) for h in held()] == [2, 2] and all(v == 1 for h in held() for v in h.values()), 60,
             "each member consuming two partitions")
    shown = held()
    assert sorted([*shown[0], *shown[1]]) == [f'partition="{p}"' for p in range(4)], shown
    assert [value(scrape(port), "vigil_alerting_partitions_held") for port in ports] == [2, 2]

    for d in range(8):
        probe.event(f"d{d}", 35.0)
    wait_for(lambda: len(receiver.bodies) == 8, 30, "8 firing notifications")
    # the deliveries are the deployment's, from the shared tables: the same on both members
    wait_for(lambda: [value(scrape(port), 'vigil_alerting_deliveries{state="sent"}') for port in ports] == [8, 8],
             15, "8 deliveries sent, on both members")
    assert [value(scrape(port), "vigil_alerting_outbox") for port in ports] == [0, 0]
    # every partition's engine receives every event (and judges its own series' only)
    events = [samples(scrape(port), "vigil_alerting_events_total") for port in ports]
    assert all(v == 8 for e in events for v in e.values()) and len(events[0]) == len(events[1]) == 2, events
    # each alert firing on the member whose partition holds its series (counted once a second)
    wait_for(lambda: sum(sum(samples(scrape(port), "vigil_alerting_alerts_firing").values()) for port in ports) == 8,
             10, "8 alerts firing, across the members")

    engines[1].kill()
    wait_for(lambda: len(samples(scrape(ports[0]), "vigil_alerting_consuming")) == 4, 40,
             "the survivor showing all four partitions")
    assert value(scrape(ports[0]), "vigil_alerting_partitions_held") == 4

    # a database that takes no new connection (its postmaster frozen; the engines' connections go on): the scrape
    # answers within the shared counts' 2 s connect timeout, without them
    os.kill(postgres.postmaster(), signal.SIGSTOP)
    try:
        began = time.monotonic()
        text = scrape(ports[0])
        took = time.monotonic() - began
    finally:
        os.kill(postgres.postmaster(), signal.SIGCONT)
    assert took < 4.5, took
    assert value(text, "vigil_alerting_outbox") is None and value(text, "vigil_alerting_partitions_held") == 4
    assert value(scrape(ports[0]), "vigil_alerting_outbox") == 0  # back
    engines[0].stop()
    log = engines[0].output()
    assert "task alerting-metrics failed" not in log and "metrics on http://127.0.0.1" in log, log
