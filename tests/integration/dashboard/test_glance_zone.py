"""Issue 14 in a real Chromium: the overview's "All N sensors OK" (and its pending form, live), and the sensor page's
From/To inputs in the site's time zone rather than the browser's."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import zoneinfo
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiomqtt
import pytest
from playwright.async_api import Browser

from tests.support.dashboard_served import logged_in, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

# Far from the browser's zone (the machine's: UTC here), so a time read in the wrong zone is 13 h off.
ZONE = "Pacific/Auckland"
RULES = """\
rules:
  - {name: fridge-range, match: {metric: temperature}, above: 8, below: 2}
"""
NAMES = {"fridge": "Drinks fridge", "larder": "Larder"}


async def test_all_ok_then_one_pending_live_and_from_to_in_the_site_zone(
        mosquitto: Mosquitto, tmp_path: Path, browser: Browser) -> None:
    now = time.time()
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write([Event(dev, "t0", "temperature", 4 + math.sin(i / 10), now - 7200 + i * 60, "°C",
                       labels=(("name", name), ("room", "Bar"))) for i in range(120) for dev, name in NAMES.items()])
    config = make_config(mosquitto, "memory://", tmp_path)
    config = config.model_copy(update={"dashboard": config.dashboard.model_copy(update={"timezone": ZONE})})
    (tmp_path / "rules.yaml").write_text(RULES)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for dev in NAMES:
            await c.publish(f"vigil/status/{dev}", b'{"state": "online"}', qos=1, retain=True)
    try:
        async with running_dashboard(config, store) as run:
            page = await logged_in(browser, run)
            await page.wait_for_selector("body[data-limits=yes]")
            assert (await page.locator("#summary").text_content() or "").strip() == "All 2 sensors OK"
            assert await page.locator("#summary.cond-ok svg.icon").count() == 1  # an icon, not only a colour
            pending = {"id": "p1", "rule": "fridge-range", "series": "fridge/t0/temperature", "state": "pending",
                       "previous": "ok", "at": now - 30, "since": now - 30, "severity": "warning", "value": 8.4,
                       "message": "too warm", "labels": {"name": "Drinks fridge", "device": "fridge"}}
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                await c.publish("vigil/alerts/fridge-range/fridge/t0/temperature", json.dumps(pending), qos=1,
                                retain=True)
            await page.wait_for_function(
                "() => document.querySelector('#summary').textContent.trim() === '1 pending: Drinks fridge'",
                timeout=10_000)
            await page.context.close()

            page = await logged_in(browser, run)
            await page.goto(run.base + "/sensor/larder/t0/temperature")
            await page.wait_for_selector("body[data-ready=yes]")
            assert await page.locator("#range-zone").text_content() == f"({ZONE})"
            zone = zoneinfo.ZoneInfo(ZONE)
            # The inputs show the range drawn, in the site's wall-clock time.
            shown = await page.locator("#to").input_value()
            assert abs(dt.datetime.fromisoformat(shown).replace(tzinfo=zone).timestamp() - now) < 180, shown
            start = dt.datetime.fromtimestamp(now - 5400, zone).replace(second=0, microsecond=0)
            end = dt.datetime.fromtimestamp(now - 1800, zone).replace(second=0, microsecond=0)
            await page.fill("#from", start.strftime("%Y-%m-%dT%H:%M"))
            await page.fill("#to", end.strftime("%Y-%m-%dT%H:%M"))
            async with page.expect_request(lambda r: "/api/v1/history" in r.url) as req:
                await page.click("#custom")
            asked = parse_qs(urlparse((await req.value).url).query)
            assert abs(float(asked["start"][0]) - start.timestamp()) < 1, (asked, start)
            assert abs(float(asked["end"][0]) - end.timestamp()) < 1, (asked, end)
            await page.context.close()
    finally:
        store.close()
