"""Calibration from the dashboard, through the real parts: the sensor page's form in headless Chromium publishes
on vigil/calibration/..., the in-process bridge on the private Mosquitto takes it, and the next reading is
stored calibrated in SQLite with its raw value kept. Hostile HTTP bodies are refused with a reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support import bridge as bridge_support
from tests.support.dashboard_served import ARTIFACTS, Running, logged_in, make_config, publish, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.calibration import JOURNAL_NAME, CalibrationJournal
from vigil.core.event import SeriesKey
from vigil.core.stores.sqlite import SqliteStore

pytestmark = pytest.mark.integration
SERIES = SeriesKey("temperature", "freezer", "t0")
PATH = "/api/v1/calibration/freezer/t0/temperature"


@pytest.fixture
async def with_bridge(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    """A dashboard and a bridge sharing one data directory and one SQLite store."""
    store = SqliteStore(tmp_path / "vigil.db")
    config = make_config(mosquitto, "memory://", tmp_path)
    bridge_config = bridge_support.make_config(mosquitto, f"sqlite:///{tmp_path}/vigil.db", Path(config.data_dir))
    try:
        async with bridge_support.running_bridge(bridge_config, store), running_dashboard(config, store) as run:
            yield run
    finally:
        store.close()


async def test_a_calibration_set_on_the_sensor_page_corrects_the_next_stored_reading(
        with_bridge: Running, browser: Browser, mosquitto: Mosquitto) -> None:
    run = with_bridge
    page = await logged_in(browser, run)
    await page.goto(run.base + "/sensor/freezer/t0/temperature")
    await page.wait_for_selector("body[data-ready=yes]")
    await expect(page.locator("#calibration-now")).to_contain_text("Not calibrated", timeout=10000)
    assert await page.locator("input[name=raw1]").is_hidden()
    await page.check("input[name=kind][value=points]")
    assert await page.locator("input[name=offset]").is_hidden()
    await page.fill("input[name=raw1]", "0.5")
    await page.fill("input[name=ref1]", "0")
    await page.fill("input[name=raw2]", "0.5")  # the same raw value twice: refused, said on the page
    await page.fill("input[name=ref2]", "100")
    await page.click("#calibration-form button[type=submit]")
    await expect(page.locator("#calibration-result")).to_contain_text("same raw", timeout=10000)
    await page.check("input[name=kind][value=offset]")
    await page.fill("input[name=offset]", "-0.5")
    await page.fill("input[name=note]", "ice bath against reference thermometer R-12")
    await page.click("#calibration-form button[type=submit]")
    await expect(page.locator("#calibration-now")).to_contain_text("offset -0.5", timeout=10000)
    assert "admin" in (await page.locator("#calibration-history").text_content() or "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#calibration").screenshot(path=str(ARTIFACTS / "calibration.png"))
    now = time.time()
    await publish(mosquitto, "vigil/readings/freezer/t0", b'{"value": -17.0, "unit": "C", "ts": %f}' % now)
    for _ in range(100):
        stored = run.store.query(SERIES, now - 1, now + 1)
        if stored:
            break
        await asyncio.sleep(0.1)
    assert [p.value for p in stored] == [-17.5]
    assert [p.value for p in run.store.query(SERIES, now - 1, now + 1, field="raw")] == [-17.0]
    (change,) = CalibrationJournal(Path(run.config.data_dir) / JOURNAL_NAME).history("freezer/t0/temperature")
    assert (change.by, change.note, change.origin) == ("admin", "ice bath against reference thermometer R-12", "mqtt")
    await page.click("#calibration-clear")
    await expect(page.locator("#calibration-now")).to_contain_text("Not calibrated", timeout=10000)
    await page.context.close()


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"points": [[0, 0], [1, 1], [2, 2]]}, 422, "at most 2"),
    ({"points": [[0, 0]]}, 422, "exactly two"),
    ({"points": [[1, 0], [1, 5]]}, 422, "same raw value"),
    ({"points": [[0, 10], [10, 0]]}, 422, "swapped"),
    ({"offset": 1e300}, 422, "finite"),
    ({"offset": "warm"}, 422, "number"),
    ({}, 422, "either offset"),
    ({"offset": 1, "points": [[0, 0], [1, 1]]}, 422, "not both"),
    ({"offset": 1, "gain": 2}, 422, "gain"),
    ({"offset": 1, "note": "x" * 600}, 422, "500"),
])
async def test_hostile_bodies_are_refused_with_a_reason(with_bridge: Running, body: dict[str, object], status: int,
                                                        words: str) -> None:
    async with with_bridge.client() as c:
        csrf = await with_bridge.login(c)
        r = await c.put(PATH, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == status and words in r.text, r.text
        assert (await c.get("/api/v1/calibration")).json()["current"] == {}


async def test_bad_series_csrf_and_json_are_refused(with_bridge: Running) -> None:
    async with with_bridge.client() as c:
        csrf = await with_bridge.login(c)
        h = {"X-CSRF-Token": csrf}
        assert (await c.put(PATH, json={"offset": 1})).status_code == 403  # no CSRF token
        r = await c.put("/api/v1/calibration/fr%E2%80%AEeezer/t0/temperature", json={"offset": 1}, headers=h)
        assert r.status_code == 422 and "U+202E" in r.text, r.text
        r = await c.put(PATH, content=b'{"offset": NaN}', headers={**h, "Content-Type": "application/json"})
        assert r.status_code in (400, 422), r.text
        r = await c.put(PATH, content=b"[" * 5000, headers={**h, "Content-Type": "application/json"})
        assert r.status_code in (400, 413, 422), r.text
        r = await c.get("/api/v1/calibration", params={"series": "a/b"})
        assert r.status_code == 422 and "device/sensor/metric" in r.text
        r = await c.put(PATH, json={"offset": 0.25, "note": "ok"}, headers=h)
        assert r.status_code == 202 and r.json()["calibration"] == {"offset": 0.25}
    async with with_bridge.client() as anonymous:
        assert (await anonymous.put(PATH, json={"offset": 1})).status_code == 401
