"""The metrics of a real dashboard (uvicorn on a port): prometheus-client's text with the process metrics,
HEAD without a body, and an over-long request line refused without a traceback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from dashboard.settings import TokenEntry
from tests.support.dashboard_served import make_config, running_dashboard
from tests.support.services import Mosquitto, raw_http
from vigil.core.stores import open_store

SCRAPER = "scraper-token-0123456789"
DASHBOARD_METRICS = ["vigil_dashboard_broker_connected", "vigil_dashboard_live_subscribers",
                     "vigil_dashboard_mqtt_messages_total", "vigil_dashboard_mqtt_bad_messages_total",
                     "vigil_dashboard_feed_restarts_total", "vigil_dashboard_series", "vigil_dashboard_alerts",
                     "vigil_dashboard_events_total"]
PROCESS_METRICS = ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"]


async def test_get_head_and_an_overlong_request_line(mosquitto: Mosquitto, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(mosquitto, f"sqlite:///{tmp_path}/vigil.db", tmp_path)
    scraper = TokenEntry.model_validate({"name": "prometheus", "token": SCRAPER, "role": "read-only"})
    config = config.model_copy(update={"dashboard": config.dashboard.model_copy(
        update={"tokens": [*config.dashboard.tokens, scraper]})})
    store = open_store(config.store.url)
    auth = f"Authorization: Bearer {SCRAPER}\r\n".encode()
    caplog.set_level(logging.INFO)
    try:
        async with running_dashboard(config, store) as run, run.client() as c:
            r = await c.get("/api/v1/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
            names = {line.split()[2] for line in r.text.splitlines() if line.startswith("# TYPE ")}
            assert set(DASHBOARD_METRICS + PROCESS_METRICS) <= names, set(DASHBOARD_METRICS + PROCESS_METRICS) - names
            assert "vigil_dashboard_broker_connected 1.0" in r.text.splitlines()
            assert 'vigil_dashboard_events_total{event="http_200"}' in r.text
            assert (await c.get("/api/v1/metrics")).status_code == 401  # still behind a reader's credentials

            port = int(config.dashboard.listen.rpartition(":")[2])
            request = b"HEAD /api/v1/metrics HTTP/1.1\r\nHost: x\r\n" + auth + b"Connection: close\r\n\r\n"
            head, _, body = (await asyncio.to_thread(raw_http, port, request)).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            headers = dict(h.lower().split(b": ", 1) for h in head.split(b"\r\n")[1:])
            assert int(headers[b"content-length"]) > 1000 and body == b""

            answer = await asyncio.to_thread(raw_http, port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer == b"" or answer.split(b" ", 2)[1].startswith(b"4"), answer[:200]
            assert (await c.get("/api/v1/health")).status_code == 200  # and it serves on
    finally:
        store.close()
    assert "Traceback" not in caplog.text and "Unhandled exception" not in caplog.text, caplog.text
