"""What a viewer sees on a real dashboard and broker: latest values once per tick, alert changes at once.

At the API (a client on ``/api/v1/live``) and in Chromium (the overview's tiles).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser

from dashboard.live import LiveState
from tests.support.dashboard_served import Running, logged_in, make_config, running_dashboard, tile
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores import MemoryStore
from vigil.core.topics import Topics

pytestmark = pytest.mark.integration


def event(device: str, sensor: str, value: float, ts: float) -> bytes:
    return Event(device, sensor, "temperature", value, ts, "°C").to_json()


def alert_body(series: str, state: str, at: float) -> bytes:
    return json.dumps({"rule": "hot", "series": series, "state": state, "previous": "pending", "at": at,
                       "since": at, "severity": "critical", "message": "too warm"}).encode()


async def messages(c: httpx.AsyncClient, out: list[tuple[float, str, Any]], started: asyncio.Event) -> None:
    """Read /api/v1/live into ``out`` as (arrival, event name, data) until cancelled."""
    async with c.stream("GET", "/api/v1/live") as r:
        kind = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((time.monotonic(), kind, json.loads(line[6:])))
                started.set()


@pytest.fixture
async def slow_tick(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    """A dashboard whose tick is 3 s: what arrives well before it did not wait for the tick."""
    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, MemoryStore(), live=LiveState(Topics(), tick=3.0)) as run:
        yield run


async def watch(run: Running) -> tuple[httpx.AsyncClient, list[tuple[float, str, Any]], asyncio.Task[None]]:
    c = run.client()
    await run.login(c)
    got: list[tuple[float, str, Any]] = []
    started = asyncio.Event()
    task = asyncio.create_task(messages(c, got, started))
    await asyncio.wait_for(started.wait(), 10)  # the snapshot came: subscribed
    return c, got, task


async def stop(c: httpx.AsyncClient, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await c.aclose()


async def until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_burst_arrives_as_the_latest_value_of_each_series_in_one_tick(slow_tick: Running,
                                                                              mosquitto: Mosquitto) -> None:
    c, got, task = await watch(slow_tick)
    try:
        now = time.time()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for i in range(60):  # 20 readings on each of 3 series
                await pub.publish("vigil/events/room/temperature", event("room", f"s{i % 3}", float(i), now + i), qos=1)
        await until(lambda: any(kind == "events" for _, kind, _ in got), 10)
        ticks = [data for _, kind, data in got if kind == "events"]
        # One tick (3 s) holds the whole burst: one message, one entry per series, the newest value.
        assert len(ticks) == 1, ticks
        assert {e["series"]: e["value"] for e in ticks[0]} == {
            "room/s0/temperature": 57.0, "room/s1/temperature": 58.0, "room/s2/temperature": 59.0}
        assert [kind for _, kind, _ in got] == ["snapshot", "events"]
    finally:
        await stop(c, task)


async def test_an_alert_firing_arrives_without_waiting_for_the_tick(slow_tick: Running, mosquitto: Mosquitto) -> None:
    c, got, task = await watch(slow_tick)
    try:
        await asyncio.sleep(0.2)
        now = time.time()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            await pub.publish("vigil/events/room/temperature", event("room", "s0", 31.0, now), qos=1)
            sent = time.monotonic()
            await pub.publish("vigil/alerts/hot/room/s0/temperature", alert_body("room/s0/temperature", "firing", now),
                              qos=1)
        await until(lambda: any(kind == "alert" for _, kind, _ in got), 10)
        arrived, _, data = next(m for m in got if m[1] == "alert")
        assert data["state"] == "firing" and data["series"] == "room/s0/temperature"
        assert arrived - sent < 2.0  # the tick is 3 s away
        # The value it follows from came just before it, not a tick later.
        kinds = [kind for _, kind, _ in got]
        assert kinds[kinds.index("alert") - 1] == "events"
        assert got[kinds.index("alert") - 1][2] == [
            {**got[kinds.index("alert") - 1][2][0], "series": "room/s0/temperature", "value": 31.0}]
    finally:
        await stop(c, task)


async def test_tiles_show_every_latest_value_and_alerts_at_once(dashboard: Running, browser: Browser,
                                                                mosquitto: Mosquitto) -> None:
    page = await logged_in(browser, dashboard)
    series = ["freezer/t0/temperature", "greenhouse/air/temperature"]
    now = time.time()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for i in range(40):  # a burst on two tiles: each shows its newest value
            device, sensor = series[i % 2].split("/")[:2]
            await pub.publish(f"vigil/events/{device}/temperature", event(device, sensor, 1.0 + i / 4, now + i),
                              qos=1)
    for sid, shown in zip(series, ("10.5", "10.8")):  # shown at the sensor's precision, one decimal
        await page.wait_for_function("([sel, v]) => document.querySelector(sel).textContent === v",
                                     arg=[tile(sid) + " .value", shown], timeout=5000)
    sel = tile("greenhouse/air/temperature")
    await pub_alert(mosquitto, "greenhouse/air/temperature", "firing")
    await page.wait_for_function(f"() => document.querySelector('{sel}').dataset.condition === 'firing'",
                                 timeout=5000)
    await pub_alert(mosquitto, "greenhouse/air/temperature", "resolved")
    await page.wait_for_function(f"() => document.querySelector('{sel}').dataset.condition !== 'firing'",
                                 timeout=5000)
    await page.context.close()


async def pub_alert(mosquitto: Mosquitto, series: str, state: str) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish(f"vigil/alerts/hot/{series}", alert_body(series, state, time.time()), qos=1)


async def test_a_page_shows_an_alert_long_before_the_next_tick(slow_tick: Running, browser: Browser,
                                                               mosquitto: Mosquitto) -> None:
    now = time.time()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish("vigil/events/room/temperature", event("room", "s0", 20.0, now), qos=1, retain=False)
    await asyncio.sleep(0.3)
    page = await logged_in(browser, slow_tick)
    sel = tile("room/s0/temperature")
    await page.wait_for_selector(sel, timeout=5000)
    t0 = time.monotonic()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish("vigil/events/room/temperature", event("room", "s0", 35.5, now + 1), qos=1)
        await pub.publish("vigil/alerts/hot/room/s0/temperature", alert_body("room/s0/temperature", "firing", now),
                          qos=1)
    await page.wait_for_function(f"() => document.querySelector('{sel}').dataset.condition === 'firing'",
                                 timeout=5000)
    # The alert and the value that made it fire, both well before the 3 s tick.
    assert await page.locator(sel + " .value").text_content() == "35.5"
    assert time.monotonic() - t0 < 2.5
    await page.context.close()
