"""Issue 16 in a real Chromium: why a sensor is flagged, in words, on the overview's tiles, the sensor page and the
Alerts page ("stuck since 03:12", "no reading for 6 min (usually every 1 min)"), from the ``reason`` of the
retained alert payload, times in the site's time zone; the flag goes when the alert resolves. The payloads are
the rule engine's own (``alerting.transition``), published on a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import json
import time
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from playwright.async_api import Browser, Page

from alerting.transition import AlertState, Severity, Transition, sensor_reason, transition_id
from tests.support.dashboard_served import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    Running,
    history,
    logged_in,
    make_config,
    running_dashboard,
    tile,
)
from tests.support.services import Mosquitto
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

# Far from the browser's zone (UTC here): a time read in the wrong zone is an hour off on a 12-hour clock.
ZONE = "Pacific/Auckland"


def payload(rule: str, series: str, kind: str, facts: dict[str, float], value: float | None, at: float,
            unit: str, state: AlertState = AlertState.FIRING) -> str:
    """What the rule engine publishes for a sensor-health alert (alerting.engine builds it the same way)."""
    device, sensor, metric = series.split("/")
    t = Transition(id=transition_id(rule, series, state, at), rule=rule, series=series, state=state,
                   previous=AlertState.PENDING, at=at, severity=Severity.WARNING, message=f"{rule}: {series}",
                   since=at, value=value, labels=(("device", device), ("metric", metric), ("sensor", sensor)),
                   reason=sensor_reason([kind], facts, value, at, unit))
    return t.to_json()


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write(history(time.time()))
    config = make_config(mosquitto, "memory://", tmp_path)
    config = config.model_copy(update={"dashboard": config.dashboard.model_copy(update={"timezone": ZONE})})
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for device in ("freezer", "greenhouse"):
            await c.publish(f"vigil/status/{device}", b'{"state": "online"}', qos=1, retain=True)
    try:
        async with running_dashboard(config, store) as run:
            yield run
    finally:
        store.close()


async def publish_all(mosquitto: Mosquitto, alerts: dict[str, str]) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for topic, body in alerts.items():
            await c.publish(topic, body, qos=1, retain=True)


async def text(page: Page, selector: str) -> str:
    return " ".join(await page.locator(selector).all_text_contents())


async def test_the_reason_is_shown_on_every_page_in_the_site_zone_and_goes_when_resolved(
        site: Running, browser: Browser, mosquitto: Mosquitto) -> None:
    now = time.time()
    stuck_since = now - 2 * 3600 - 17 * 60
    clock = dt.datetime.fromtimestamp(stuck_since, zoneinfo.ZoneInfo(ZONE)).strftime("%I:%M")
    utc_clock = dt.datetime.fromtimestamp(stuck_since, dt.timezone.utc).strftime("%I:%M")
    assert clock != utc_clock
    alerts = {
        "vigil/alerts/freezer-stuck/freezer/t0/temperature": payload(
            "freezer-stuck", "freezer/t0/temperature", "stuck", {"stuck_since": stuck_since, "limit": 7200},
            -18.2, now - 60, "°C"),
        "vigil/alerts/door-stale/freezer/door/humidity": payload(
            "door-stale", "freezer/door/humidity", "stale", {"interval": 60.0, "limit": 180.0}, 360.0, now, "%"),
        "vigil/alerts/warming/greenhouse/air/temperature": payload(
            "warming", "greenhouse/air/temperature", "forecast", {"eta": 18 * 60 + 20, "threshold": 30.0, "rate": 0.3},
            1100.0, now, "°C"),
        "vigil/alerts/probe-jump/greenhouse/air/temperature": payload(
            "probe-jump", "greenhouse/air/temperature", "jump", {"jumped_from": -18.1, "elapsed": 10.0}, 25.0, now,
            "°C"),
        "vigil/alerts/probe-noise/freezer/t0/temperature": payload(
            "probe-noise", "freezer/t0/temperature", "noise", {"spread": 1.3, "usual": 0.15}, 1.3 / 0.15, now, "°C"),
    }
    await publish_all(mosquitto, alerts)
    page = await logged_in(browser, site)
    t0 = tile("freezer/t0/temperature")
    await page.wait_for_selector(f"{t0} .flag[data-kind=stuck]", timeout=10_000)
    assert f"stuck since {clock}" in await text(page, f"{t0} .flag[data-kind=stuck]")
    assert await text(page, f"{t0} .flag[data-kind=noise]") == "noisy: 9x its usual spread"
    door = tile("freezer/door/humidity")
    assert await text(page, f"{door} .flag") == "no reading for 6 min (usually every 1 min)"
    air = tile("greenhouse/air/temperature")
    assert await text(page, f"{air} .flag[data-kind=jump]") == "jumped from -18.1 to 25.0 °C"
    assert await text(page, f"{air} .flag[data-kind=forecast]") == "will reach 30 °C in about 18 min"
    assert await page.locator(f"{t0} .flag svg.icon").count() == 2  # an icon beside the words, not only a colour
    assert "null" not in await text(page, t0)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "flags-overview.png"), full_page=True)

    await page.click(t0)
    await page.wait_for_selector("body[data-page=sensor][data-ready=yes]")
    await page.wait_for_selector("#flags .flag[data-kind=stuck]", timeout=5000)
    assert f"stuck since {clock}" in await text(page, "#flags .flag[data-kind=stuck]")
    assert "rule freezer-stuck" in await text(page, "#flags .flag[data-kind=stuck]")
    await page.screenshot(path=str(ARTIFACTS / "flags-sensor.png"), full_page=True)
    # resolved: the flag goes, live
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        await c.publish("vigil/alerts/freezer-stuck/freezer/t0/temperature", payload(
            "freezer-stuck", "freezer/t0/temperature", "stuck", {"stuck_since": now, "limit": 7200}, -17.5, now, "°C",
            AlertState.RESOLVED), qos=1, retain=True)
    await page.wait_for_selector("#flags .flag[data-kind=stuck]", state="detached", timeout=5000)
    assert await page.locator("#flags .flag[data-kind=noise]").count() == 1

    await page.goto(site.base + "/alerts")
    await page.wait_for_selector("body[data-ready=yes]")
    row = '#current tr[data-key="door-stale/freezer/door/humidity"]'
    assert await text(page, f"{row} .flag") == "no reading for 6 min (usually every 1 min)"
    assert await page.locator("#current tr .flag").count() == 4
    # a stale alert's value is seconds of silence, not a reading: not shown as "at firing 360 %"
    assert "at firing" not in await text(page, row)
    assert "at firing 25 °C" in await text(page, '#current tr[data-key="probe-jump/greenhouse/air/temperature"]')
    await page.screenshot(path=str(ARTIFACTS / "flags-alerts.png"), full_page=True)
    await page.context.close()

    phone = await logged_in(browser, site, viewport=PHONE, dark=True)
    await phone.wait_for_selector(f"{door} .flag", timeout=10_000)
    await phone.screenshot(path=str(ARTIFACTS / "flags-overview-phone-dark.png"), full_page=True)
    await phone.context.close()


async def test_odd_reasons_show_the_page_and_never_run_as_html(
        site: Running, browser: Browser, mosquitto: Mosquitto) -> None:
    now = time.time()
    base = {"previous": "pending", "at": now, "since": now, "severity": "warning", "message": "m", "value": 1.0}
    odd = {
        "a": {"kind": "stuck", "since": "<img src=x onerror=alert(1)>", "unit": "<b>°C</b>"},
        "b": {"kind": "stale", "last": 1e300, "interval": -5},
        "c": {"kind": "forecast", "reach_at": now - 600, "threshold": 1e14, "unit": "<i>x</i>"},
        "d": {"kind": "jump", "from": None, "to": "25"},
        "e": "no reading for ever",
        "f": {"kind": "noise", "ratio": 1e14, "pad": "x" * 20_000},
    }
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for rule, reason in odd.items():
            body = {**base, "rule": rule, "series": "freezer/t0/temperature", "state": "firing", "reason": reason}
            await c.publish(f"vigil/alerts/{rule}/freezer/t0/temperature", json.dumps(body), qos=1, retain=True)
    dialogs: list[str] = []
    page = await logged_in(browser, site, viewport=DESKTOP)
    page.on("dialog", lambda d: dialogs.append(d.message))
    t0 = tile("freezer/t0/temperature")
    await page.wait_for_selector(f"{t0} .flag[data-rule=f]", timeout=10_000)
    assert await page.locator(f"{t0} .flag").count() == 5  # "e" is no reason at all
    assert await text(page, f"{t0} .flag[data-rule=a]") == "stuck"
    assert await text(page, f"{t0} .flag[data-rule=d]") == "implausible jump"
    assert (await text(page, f"{t0} .flag[data-rule=c]")).startswith("was to reach 100000000000000 <i>x</i> at ")
    assert await page.locator(".tile b, .tile i, .tile img").count() == 0
    for path in ("/sensor/freezer/t0/temperature", "/alerts"):
        await page.goto(site.base + path)
        await page.wait_for_selector("body[data-ready=yes]")
        assert await page.locator(".flag").count() >= 5
        assert await page.locator("main b, main i, main img").count() == 0
    assert dialogs == []
    await page.context.close()
