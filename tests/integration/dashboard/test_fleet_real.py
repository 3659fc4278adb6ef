"""The Fleet page and API over a real uvicorn, the private Mosquitto and the real stores (SQLite file,
influxd 1.x), then in headless Chromium: the devices at risk with their reasons, an offline status from
the bus, hostile names and query parameters, and a screenshot to look at."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import Browser

from dashboard.settings import FleetSettings
from tests.support.dashboard_served import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    logged_in,
    make_config,
    publish,
    running_dashboard,
)
from tests.support.fleet import fleet_events
from tests.support.services import Mosquitto
from vigil.app.config import VigilConfig
from vigil.core.event import Event
from vigil.core.stores import Store

pytestmark = pytest.mark.integration

XSS = "<img src=x onerror=alert(1)>"


def fleet_config(mosquitto: Mosquitto, tmp_path: Path) -> VigilConfig:
    config = make_config(mosquitto, "memory://", tmp_path)
    fleet = FleetSettings(cache=0.0)
    return config.model_copy(update={"dashboard": config.dashboard.model_copy(update={"fleet": fleet})})


async def test_fleet_api_and_page_against_a_real_store(mosquitto: Mosquitto, store: Store, tmp_path: Path) -> None:
    now = time.time()
    store.write([*fleet_events(now, 50), Event(XSS, "main", "battery", 4.0, now - 60, "%")])
    async with running_dashboard(fleet_config(mosquitto, tmp_path), store) as run, run.client() as c:
        await run.login(c)
        await publish(mosquitto, "vigil/status/dev-0000", b'{"state": "offline"}', retain=True)

        async def summary() -> str:
            return str((await c.get("/api/v1/fleet")).json()["summary"])

        text = ""
        for _ in range(100):  # the status arrives on the bus
            text = await summary()
            if "offline" in text:
                break
        assert text == ("7 of 51 devices at risk: 2 low battery, 1 falling battery, 1 weak signal, 1 rebooting, "
                        "1 offline, 1 stale"), text
        body = (await c.get("/api/v1/fleet", params={"risk": "1"})).json()
        why = {d["device"]: d["reasons"] for d in body["devices"]}
        assert why["dev-0029"] == ["weak signal (-88 dBm)"]
        assert why[XSS] == ["battery 4 %"]
        assert "falling -3.0 %/day" in why["dev-0019"][0]
        assert why["dev-0000"] == ["offline (its status says so)"]
        for attack in ("dev-0029' OR '1'='1", "x\" OR \"1\"=\"1", ".*"):
            r = await c.get("/api/v1/fleet", params={"device": attack})
            assert r.status_code == 200 and r.json()["devices"] == [], attack
        for params in ({"limit": "-1"}, {"risk": "🙂"}, {"device": "d" * 200}):
            assert (await c.get("/api/v1/fleet", params=params)).status_code == 422, params
        page = await c.get("/fleet")
        assert page.status_code == 200 and "7 of 51 devices at risk" in page.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


@pytest.mark.parametrize(("name", "viewport", "dark"), [("desktop", DESKTOP, False), ("phone", PHONE, False),
                                                        ("desktop-dark", DESKTOP, True)])
async def test_fleet_page_in_chromium(mosquitto: Mosquitto, browser: Browser, tmp_path: Path, name: str,
                                      viewport: dict[str, int], dark: bool) -> None:
    from vigil.core.stores import open_store

    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    now = time.time()
    store.write([*fleet_events(now, 50), Event(XSS, "main", "battery", 4.0, now - 60, "%")])
    try:
        async with running_dashboard(fleet_config(mosquitto, tmp_path), store) as run:
            page = await logged_in(browser, run, viewport, dark)
            dialogs: list[str] = []
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.click("nav >> text=Fleet")
            await page.wait_for_selector("body[data-ready=yes][data-page=fleet]")
            assert await page.locator("#fleet-summary").text_content() == (
                "6 of 51 devices at risk: 2 low battery, 1 falling battery, 1 weak signal, 1 rebooting, 1 stale")
            risky = page.locator("#at-risk tbody tr")
            assert await risky.count() == 6
            assert await page.locator("#at-risk").get_by_text("rebooted 4 times in the last 24h").count() == 1
            assert await page.locator("#at-risk").get_by_text(XSS, exact=True).count() == 1
            assert await page.locator("#fleet tbody tr").count() == 51
            # readable: the reasons are not clipped, and the table fits a phone without hiding columns
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"] + 400, width
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"dashboard-fleet-{name}.png"), full_page=True)
            await page.screenshot(path=str(ARTIFACTS / f"dashboard-fleet-{name}-top.png"))
            assert dialogs == []
            await page.context.close()
    finally:
        store.close()
