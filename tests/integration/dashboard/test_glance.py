"""Issue 14 in a real Chromium: the overview answers "is everything all right?", alerts show who handled them
(also after a reload and a restart), every page passes axe-core in light and dark, and actions work by keyboard."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from playwright.async_api import Browser, Page

from alerting.templates import MessageTemplate
from tests.support.dashboard_served import (
    ARTIFACTS,
    CANVAS_INK,
    DESKTOP,
    PHONE,
    Running,
    logged_in,
    make_config,
    running_dashboard,
    tile,
)
from tests.support.services import Mosquitto
from vigil.app.config import VigilConfig
from vigil.core.event import Event
from vigil.core.stores import Store, open_store

pytestmark = pytest.mark.integration

AXE = Path(__file__).resolve().parents[3] / "dashboard" / "web" / "node_modules" / "axe-core" / "axe.min.js"
RULES = """\
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer*"}
    above: -15
    clear_below: -16
    for: 5m
    severity: critical
    message: "{{ labels.name }} is at {{ value_text }} °C: is the door open?"
  - {name: fridge-range, match: {device: fridge, metric: temperature}, above: 8, below: 2}
  - {name: quiet, match: {metric: temperature}, nodata: 10m}
"""
F1, F3, FRIDGE, CELLAR = ("freezer1/t0/temperature", "freezer3/t0/temperature", "fridge/t0/temperature",
                          "cellar/t0/temperature")


def readings(now: float) -> list[Event]:
    """A day of two freezers, two hours of a new fridge, a cellar that went quiet 30 minutes ago."""
    out = []
    for i in range(24 * 60):
        ts = now - 86400 + i * 60
        for dev, name in (("freezer1", "Freezer 1"), ("freezer3", "Freezer 3")):
            value = -18 + 2 * math.sin(i / 90) + (6.087 if i > 24 * 60 - 40 else 0)
            out.append(Event(dev, "t0", "temperature", value, ts, "°C",
                             labels=(("name", name), ("room", "Kitchen"), ("site", "Restaurant"))))
        if i >= 24 * 60 - 120:
            out.append(Event("fridge", "t0", "temperature", 4 + math.sin(i / 20), ts, "°C",
                             labels=(("name", "Drinks fridge"), ("room", "Bar"), ("site", "Restaurant"))))
        if i < 24 * 60 - 30:
            out.append(Event("cellar", "t0", "temperature", 12.5, ts, "°C",
                             labels=(("name", "Wine cellar"), ("site", "Restaurant"))))
    return out


def firing(series: str, now: float, value: float) -> dict[str, Any]:
    name = "Freezer 1" if series == F1 else "Freezer 3"
    return {"id": "x" + series[:8], "rule": "freezer-warm", "series": series, "state": "firing", "previous": "pending",
            "at": now - 600, "since": now - 900, "severity": "critical", "value": value,
            # the message as the engine renders it from the rule's template
            "message": MessageTemplate("{{ labels.name }} is at {{ value_text }} °C: is the door open?").render(
                {"labels": {"name": name}, "value": value}),
            "labels": {"name": name, "room": "Kitchen", "device": series.split("/")[0], "sensor": "t0",
                       "metric": "temperature"}}


async def engine_stand_in(mosquitto: Mosquitto, states: dict[str, dict[str, Any]]) -> None:
    """Does what the rule engine does with an acknowledgement: republishes the state, retained, with who."""
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        await c.subscribe("vigil/ack/#", qos=1)
        async for m in c.messages:
            key = m.topic.value.split("/", 2)[2]
            ack = json.loads(m.payload)
            if key in states:
                body = {**states[key], "acknowledged_by": ack["by"], "ack_comment": ack.get("comment", "")}
                await c.publish(f"vigil/alerts/{key}", json.dumps(body), qos=1, retain=True)


class Site:
    """The data, rules and retained states of a small restaurant; ``serve()`` starts a dashboard on them."""

    def __init__(self, config: VigilConfig, store: Store) -> None:
        self.config, self.store = config, store

    def serve(self) -> AbstractAsyncContextManager[Running]:
        return running_dashboard(self.config, self.store)


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Site]:
    now = time.time()
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write(readings(now))
    config = make_config(mosquitto, "memory://", tmp_path)
    config = config.model_copy(update={"dashboard": config.dashboard.model_copy(update={"timezone": "Europe/Berlin"})})
    (tmp_path / "rules.yaml").write_text(RULES)
    states = {f"freezer-warm/{F1}": firing(F1, now, -11.913), f"freezer-warm/{F3}": firing(F3, now, -12.2)}
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for dev in ("freezer1", "freezer3", "fridge", "cellar"):
            await c.publish(f"vigil/status/{dev}", b'{"state": "online"}', qos=1, retain=True)
        await c.publish("vigil/status/greenhouse", b'{"state": "offline"}', qos=1, retain=True)
        for key, state in states.items():
            await c.publish(f"vigil/alerts/{key}", json.dumps(state), qos=1, retain=True)
    store.write([Event("greenhouse", "air", "temperature", 21.0, now - 60, "°C", labels=(("name", "Greenhouse"),)),
                 Event("freezer1", "t0", "temperature", -11.913, now - 20, "°C",
                       labels=(("name", "Freezer 1"), ("room", "Kitchen"), ("site", "Restaurant")))])
    engine = asyncio.create_task(engine_stand_in(mosquitto, states), name="engine-stand-in")
    try:
        yield Site(config, store)
    finally:
        engine.cancel()
        await asyncio.gather(engine, return_exceptions=True)
        store.close()


async def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not await page.evaluate("() => !!window.axe"):
        await page.add_script_tag(path=str(AXE))
    found: list[str] = await page.evaluate("""async () => {
      const r = await axe.run(document, { resultTypes: ["violations"] });
      return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id} (${v.impact}): ` + v.nodes.slice(0, 3).map((n) => n.target.join(" ")
          + " " + (n.failureSummary || "").replace(/\\s+/g, " ")).join(" | "));
    }""")
    return found


async def open_page(page: Page, base: str, path: str) -> None:
    await page.goto(base + path)
    await page.wait_for_selector("body[data-ready=yes]")


async def test_the_overview_says_what_is_wrong_in_words(site: Site, browser: Browser) -> None:
    async with site.serve() as run:
        await overview_in_words(run, browser)


async def overview_in_words(run: Running, browser: Browser) -> None:
    page = await logged_in(browser, run)
    await page.wait_for_selector("body[data-limits=yes]")
    summary = await page.locator("#summary").text_content() or ""
    assert summary.startswith("2 firing: Freezer 1, Freezer 3"), summary
    assert "1 offline: Greenhouse" in summary and "1 stale: Wine cellar" in summary
    f1 = page.locator(tile(F1))
    assert await f1.get_attribute("data-condition") == "firing"
    text = " ".join((await f1.inner_text()).split())
    for part in ("FIRING", "Freezer 1", "Kitchen", "-11.9 °C", "Limit: above -15 °C for 5 min", "ago"):
        assert part in text, f"{part!r} not in the tile: {text!r}"
    fridge = " ".join((await page.locator(tile(FRIDGE)).inner_text()).split())
    assert "OK" in fridge and "Limit: outside 2–8 °C" in fridge, fridge
    assert await page.locator(tile(CELLAR)).get_attribute("data-condition") == "stale"
    assert re.search(r"no reading for 3\d min", await page.locator(tile(CELLAR)).inner_text())
    assert await page.locator(tile("greenhouse/air/temperature")).get_attribute("data-condition") == "offline"
    # A condition is an icon and a word, not only a colour.
    assert await f1.locator(".cond svg.icon").count() == 1
    await page.context.close()


async def test_the_sensor_page_fits_a_new_sensor_and_draws_its_limits(site: Site, browser: Browser) -> None:
    async with site.serve() as run:
        page = await logged_in(browser, run)
        await open_page(page, run.base, "/sensor/fridge/t0/temperature")
        await sensor_page_checks(page)


async def sensor_page_checks(page: Page) -> None:
    assert (await page.locator("#title").text_content() or "").startswith("Drinks fridge · Bar")
    assert "Showing since the first reading (2 h)" in (await page.locator("#range-note").text_content() or "")
    chart = page.locator("#chart")
    assert await chart.get_attribute("data-y-label") == "temperature (°C)"
    assert await chart.get_attribute("data-thresholds") == "8 2"
    assert await page.evaluate(CANVAS_INK) > 2000
    stats = " ".join((await page.locator("#stats").inner_text()).split())
    assert re.search(r"min [23]\.\d °C max [45]\.\d °C mean [345]\.\d °C", stats), stats
    assert "fridge-range (warning): outside 2–8 °C" in (await page.locator("#limits").text_content() or "")
    await page.context.close()


async def test_acknowledge_and_silence_by_keyboard_and_both_survive_a_reload_and_a_restart(
        site: Site, browser: Browser) -> None:
    async with site.serve() as run:
        page = await logged_in(browser, run)
        await open_page(page, run.base, "/alerts")
        ack, sil = await handle_by_keyboard(page)
    # The dashboard restarts: the ack time comes from its journal, the rest from the retained states.
    async with site.serve() as again:
        page = await logged_in(browser, again)
        await open_page(page, again.base, "/alerts")
        await page.wait_for_selector(f'#current tr[data-key="freezer-warm/{F3}"] .silenced')
        assert await handled(page) == (ack, sil)
        await page.goto(again.base + "/")
        await page.wait_for_selector("body[data-ready=yes]")
        assert await page.locator(tile(F1)).get_attribute("data-condition") == "acknowledged"
        assert await page.locator(tile(F3)).get_attribute("data-condition") == "silenced"
        await page.context.close()


async def handled(page: Page) -> tuple[str, str]:
    """What the alerts page says about how each freezer's alert was handled."""
    a = " ".join((await page.locator(f'#current tr[data-key="freezer-warm/{F1}"] .handled').inner_text()).split())
    s = " ".join((await page.locator(f'#current tr[data-key="freezer-warm/{F3}"] .handled').inner_text()).split())
    return a, s


async def handle_by_keyboard(page: Page) -> tuple[str, str]:
    row1 = page.locator(f'#current tr[data-key="freezer-warm/{F1}"]')
    assert "now -11.9 °C" in " ".join((await row1.inner_text()).split())  # the live value, not only at firing

    async def tab_to(selector: str) -> None:
        for _ in range(60):
            await page.keyboard.press("Tab")
            if await page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"{selector} is not reachable by keyboard")

    await tab_to(f'tr[data-key="freezer-warm/{F1}"] button[data-action=ack]')
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#ack-dialog[open]")
    await page.keyboard.type("door was open, closed it")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#ack-dialog:not([open])", state="attached")
    await page.wait_for_selector(f'#current tr[data-key="freezer-warm/{F1}"] .ack', timeout=5000)

    await tab_to(f'tr[data-key="freezer-warm/{F3}"] button[data-action=silence]')
    await page.keyboard.press("Enter")
    dialog = page.locator("#silence-dialog")
    await page.wait_for_selector("#silence-dialog[open]")
    assert await dialog.locator("[data-role=matchers] li").all_inner_texts() == [
        "rule = freezer-warm", f"series = {F3}"]
    await dialog.get_by_label("4 h").check()
    await dialog.get_by_label("Comment").fill("defrosting")
    await dialog.get_by_label("Comment").press("Enter")
    await page.wait_for_selector(f'#current tr[data-key="freezer-warm/{F3}"] .silenced', timeout=5000)

    ack, sil = await handled(page)
    assert ack.startswith("Acknowledged by admin,") and "“door was open, closed it”" in ack, ack
    assert sil.startswith("Silenced until ") and "by admin" in sil and "“defrosting”" in sil, sil
    assert "GMT+1" in ack or "CET" in ack, f"the site's zone (Europe/Berlin) is named: {ack}"
    await page.reload()
    await page.wait_for_selector("body[data-ready=yes]")
    assert await handled(page) == (ack, sil)
    await page.context.close()
    return ack, sil


@pytest.mark.parametrize(("name", "viewport", "dark"), [("desktop", DESKTOP, False), ("desktop-dark", DESKTOP, True),
                                                        ("phone", PHONE, False), ("phone-dark", PHONE, True)])
async def test_every_page_passes_axe_and_is_photographed(site: Site, browser: Browser, name: str,
                                                         viewport: dict[str, int], dark: bool) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with site.serve() as run:
        await photograph(run, browser, name, viewport, dark)


async def photograph(run: Running, browser: Browser, name: str, viewport: dict[str, int], dark: bool) -> None:
    page = await logged_in(browser, run, viewport, dark, bypass_csp=True)
    # An alert that was acknowledged (by the API, as the page does) and one that was silenced.
    token = await page.evaluate("() => document.querySelector('meta[name=csrf-token]').content")
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    await page.request.post(f"{run.base}/api/v1/alerts/freezer-warm/{F1}/ack", headers=headers,
                            data=json.dumps({"comment": "door closed"}))
    await page.request.post(f"{run.base}/api/v1/silences", headers=headers,
                            data=json.dumps({"matchers": {"rule": "freezer-warm", "series": F3}, "duration": "4h",
                                             "comment": "defrosting"}))
    await page.wait_for_function(f"() => document.querySelector('{tile(F3)}').dataset.condition === 'silenced'",
                                 timeout=5000)
    problems: dict[str, list[str]] = {}
    for page_name, path in (("overview", "/"), ("sensor", "/sensor/freezer1/t0/temperature"), ("alerts", "/alerts"),
                            ("silences", "/silences"), ("rules", "/rules"), ("fleet", "/fleet"),
                            ("reports", "/reports")):
        await open_page(page, run.base, path)
        if page_name == "overview":
            await page.wait_for_selector("body[data-sparklines=yes][data-limits=yes]")
        await page.screenshot(path=str(ARTIFACTS / f"glance-{page_name}-{name}.png"), full_page=True)
        problems[page_name] = await axe_violations(page)
        if page_name == "alerts" and name in ("desktop", "phone-dark"):
            await page.locator(f'tr[data-key="freezer-warm/{F1}"] button[data-action=silence]').click()
            await page.wait_for_selector("#silence-dialog[open]")
            await page.screenshot(path=str(ARTIFACTS / f"glance-silence-dialog-{name}.png"))
            problems["silence dialog"] = await axe_violations(page)
    assert {k: v for k, v in problems.items() if v} == {}
    await page.context.close()
