"""Fixtures of the dashboard's integration tests: a real store, headless Chromium, a dashboard with history."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.dashboard_served import ARGS, CHROMIUM, Running, history, make_config, running_dashboard
from tests.support.services import Influxd, Mosquitto
from vigil.core.stores import Store, open_store


@pytest.fixture(params=["sqlite", "influxdb1"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each test runs against the SQLite file store and the private influxd."""
    if request.param == "influxdb1":
        influxd: Influxd = request.getfixturevalue("influxd")
        db = request.getfixturevalue("influx_db")
        s = open_store(influxd.url(db))
    else:
        s = open_store(f"sqlite:///{tmp_path}/vigil.db")
    yield s
    s.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write(history(time.time()))
    config = make_config(mosquitto, "memory://", tmp_path)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        await c.publish("vigil/status/freezer", b'{"state": "online", "version": "0.1.0"}', qos=1, retain=True)
        await c.publish("vigil/status/greenhouse", b'{"state": "offline"}', qos=1, retain=True)
    try:
        async with running_dashboard(config, store) as run:
            yield run
    finally:
        store.close()
