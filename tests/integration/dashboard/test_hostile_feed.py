"""Hostile messages on the bus, retained before the dashboard starts and arriving while it runs.

The real dashboard (uvicorn), the private Mosquitto, a SQLite file written by an older bridge (it
holds Infinity), and Chromium: the good traffic around the bad is still shown and the page works.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser

from dashboard.feed import LiveFeed
from dashboard.live import LiveState
from tests.support.dashboard_app import old_sqlite_store
from tests.support.dashboard_served import (
    TOKEN,
    Running,
    eventually,
    logged_in,
    make_config,
    publish,
    running_dashboard,
    tile,
)
from tests.support.services import Mosquitto
from vigil.core.event import Event

pytestmark = pytest.mark.integration

# Under the 64 KB a live-state message may have, so that it reaches the JSON parser.
DEEP = b"[" * 20_000 + b"]" * 20_000
RETAINED = [
    ("vigil/status/evil-deep", b'{"state": "online", "x": ' + DEEP + b"}"),
    ("vigil/status/evil-inf", b'{"state": "online", "temperature": 1e999}'),
    ("vigil/alerts/hot/evil/t0/temperature", b'{"state": "firing", "labels": ' + DEEP + b"}"),
    ("vigil/alerts/hot/evil/t1/temperature", b'{"state": "firing", "rule": "hot", "value": 1e999}'),
]
LIVE = [
    ("vigil/status/evil-live", b'{"state": "online", "x": ' + DEEP + b"}"),
    ("vigil/status/evil-live-inf", b'{"state": "online", "t": -1e999}'),
    ("vigil/events/freezer/temperature", DEEP),
    ("vigil/events/freezer/temperature", b"[" * 100_000),
    ("vigil/events/freezer/temperature", b'{"device": "freezer", "sensor": "t0", "metric": "temperature", '
                                         b'"value": "Infinity", "ts": 1700000000}'),
    ("vigil/alerts/hot/evil/t2/temperature", b'{"state": "firing", "since": ' + b"9" * 400 + b"}"),
]
GOOD_ALERT = {"rule": "freezer-warm", "series": "freezer/t0/temperature", "state": "firing", "previous": "pending",
              "severity": "critical", "message": "freezer is warm", "value": -4.0}


def strict(text: str) -> object:
    """JSON.parse as a browser does it: NaN and Infinity are refused."""
    def refuse(name: str) -> object:
        raise AssertionError(f"{name} in a JSON answer: {text[:200]}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
async def hostile(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    now = time.time()
    # An older bridge stored Infinity among good readings.
    store = old_sqlite_store(tmp_path / "vigil.db", [math.inf if i == 30 else -18.0 + i / 100 for i in range(60)],
                             now - 3600)
    for topic, payload in [*RETAINED, ("vigil/status/freezer", b'{"state": "online", "version": "1.0"}'),
                           ("vigil/alerts/freezer-warm/freezer/t0/temperature",
                            json.dumps({**GOOD_ALERT, "at": now, "since": now}).encode())]:
        await publish(mosquitto, topic, payload, retain=True)
    try:
        async with running_dashboard(make_config(mosquitto, "memory://", tmp_path), store) as run:
            yield run
    finally:
        store.close()


async def snapshot(c: httpx.AsyncClient) -> object:
    async with c.stream("GET", "/api/v1/live") as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                return strict(line[6:])
    raise AssertionError("no snapshot on /api/v1/live")


async def test_retained_and_live_hostile_messages_leave_the_dashboard_working(
        hostile: Running, mosquitto: Mosquitto) -> None:
    async with hostile.client() as c:
        r = await c.get("/api/v1/health")
        assert r.status_code == 200 and r.json()["broker"] is True, r.text
        await hostile.login(c)
        snap = await snapshot(c)
        assert isinstance(snap, dict) and snap["devices"]["freezer"]["state"] == "online"
        assert [a["rule"] for a in snap["alerts"]] == ["freezer-warm"]
        # Messages arriving now: each bad one between good ones.
        for i, (topic, payload) in enumerate(LIVE):
            await publish(mosquitto, topic, payload)
            await publish(mosquitto, "vigil/events/freezer/temperature",
                          Event("freezer", "t0", "temperature", -5.0 - i, time.time(), "°C").to_json())
        for _ in range(100):
            latest = strict((await c.get("/api/v1/latest")).text)
            if isinstance(latest, list) and any(row["value"] == -5.0 - (len(LIVE) - 1) for row in latest):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the last good reading never showed: {latest}")
        assert (await c.get("/api/v1/health")).status_code == 200
        metrics = (await c.get("/api/v1/metrics")).text
        bad = next(int(float(line.split()[-1])) for line in metrics.splitlines()
                   if line.startswith("vigil_dashboard_mqtt_bad_messages_total"))
        assert bad >= len(RETAINED) + len(LIVE) - 1, metrics
        for path in ("/api/v1/devices", "/api/v1/alerts", "/api/v1/silences", "/api/v1/sparklines"):
            r = await c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            strict(r.text)
        r = await c.get("/api/v1/history", params={"device": "freezer", "sensor": "t0", "range": "2h", "bucket": 60})
        assert r.status_code == 200, r.text[:300]
        body = strict(r.text)
        assert isinstance(body, dict) and len(body["points"]) >= 59 and body["stats"]["max"] < 0
        # The feed still publishes: ingest reaches the broker.
        r = await c.post("/api/v1/readings", params={"device": "freezer", "sensor": "t1"},
                         json={"value": 1.5, "ts": time.time(), "unit": "°C"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 202, r.text


async def test_the_page_works_in_chromium_among_hostile_retained_messages(
        hostile: Running, browser: Browser, mosquitto: Mosquitto) -> None:
    page = await logged_in(browser, hostile)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.reload()
    await page.wait_for_selector("body[data-ready=yes]")
    await page.wait_for_selector("body[data-live=up]", timeout=5000)
    value = page.locator(tile("freezer/t0/temperature") + " .value")
    assert (await value.text_content() or "–") != "–"
    assert await page.locator(".device[data-device=freezer] .badge").text_content() == "online"
    await publish(mosquitto, "vigil/status/evil-live-inf", b'{"state": "online", "t": 1e999}')
    await publish(mosquitto, "vigil/events/freezer/temperature",
                  Event("freezer", "t0", "temperature", -4.5, time.time(), "°C").to_json())
    await page.wait_for_function("sel => document.querySelector(sel).textContent === '-4.5'",
                                 arg=tile("freezer/t0/temperature") + " .value", timeout=5000)
    await page.click(tile("freezer/t0/temperature"))
    await page.wait_for_selector("body[data-page=sensor][data-ready=yes]")
    stats = await page.locator("#stats").text_content()
    assert stats and "-18" in stats, stats
    assert errors == [], errors
    await page.context.close()


async def test_a_feed_that_fails_for_any_reason_reconnects(mosquitto: Mosquitto, tmp_path: Path) -> None:
    class Flaky(LiveState):
        """Fails once while connecting, as a defect would."""

        failures = 1

        def set_connected(self, connected: bool) -> None:
            if connected and self.failures:
                self.failures -= 1
                raise RuntimeError("a defect while connecting")
            super().set_connected(connected)

    config = make_config(mosquitto, "memory://", tmp_path)
    state = Flaky(config.mqtt.topics)
    feed = LiveFeed(config.mqtt, state, "test-dashboard")
    task = asyncio.create_task(feed.run(), name="test-feed")
    try:
        assert await eventually(lambda: state.connected, timeout=10)
        assert feed.restarts == 1
        await publish(mosquitto, "vigil/events/freezer/temperature",
                      Event("freezer", "t0", "temperature", 3.5, time.time(), "°C").to_json())
        assert await eventually(lambda: "freezer/t0/temperature" in state.latest)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
