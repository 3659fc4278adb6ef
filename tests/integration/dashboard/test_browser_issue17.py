"""Issue 17 in a real headless Chromium against a real dashboard and Mosquitto: the acknowledgement link on a phone,
a latched alarm that cleared, corrective-action notes, and hostile links through the running dashboard.

The rule engine is stood in for by a small MQTT client that answers acknowledgements and notes the way the
engine's retained alert payload does (alerting's own tests cover the engine)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import zoneinfo
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pypdf
import pytest
from playwright.async_api import Browser

from tests.integration.dashboard.test_glance import axe_violations
from tests.support.dashboard_served import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    Running,
    history,
    logged_in,
    make_config,
    publish,
    running_dashboard,
    tile,
)
from tests.support.services import Mosquitto
from vigil.core.acklink import load_secret, sign
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

RULE, SERIES = "freezer-warm", "freezer/t0/temperature"
KEY = f"{RULE}/{SERIES}"
TOPIC = f"vigil/alerts/{KEY}"


def alert_state(state: str, since: float, **extra: Any) -> dict[str, Any]:
    return {"id": f"t-{state}", "rule": RULE, "series": SERIES, "state": state, "previous": "firing",
            "at": since + 60, "severity": "critical", "since": since, "value": -4.2, "latched": True,
            "message": "freezer/t0 is -4.2 °C, above -10 °C for 5m", "acknowledged_by": None, "ack_comment": "",
            "notes": [], **extra}


@asynccontextmanager
async def engine(mosquitto: Mosquitto, state: dict[str, Any]) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
    """Stands in for the rule engine: records acks and notes, and republishes the retained alert as it would."""
    got: list[tuple[str, dict[str, Any]]] = []

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="engine-stand-in") as c:
            await c.subscribe("vigil/ack/#", qos=1)
            await c.subscribe("vigil/notes/#", qos=1)
            async for m in c.messages:
                body = json.loads(m.payload)  # type: ignore[arg-type]
                got.append((m.topic.value, body))
                if m.topic.value.startswith("vigil/ack/"):
                    state.update(acknowledged_by=body["by"], acknowledged_at=time.time(),
                                 state="resolved" if state["state"] == "cleared" else state["state"])
                    if body.get("note"):
                        state["notes"] = [*state["notes"], {"by": body["by"], "text": body["note"], "at": time.time()}]
                else:
                    state["notes"] = [*state["notes"], {"by": body["by"], "text": body["text"], "at": time.time()}]
                await c.publish(TOPIC, json.dumps(state), qos=1, retain=True)

    task = asyncio.create_task(run(), name="engine-stand-in")
    await asyncio.sleep(0.3)  # subscribed
    try:
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def ack_url(run: Running, since: float, to: str = "ana", expires: float | None = None) -> str:
    secret = load_secret(Path(run.config.data_dir))
    return f"{run.base}/ack/" + sign(secret, KEY, since, to, expires or time.time() + 86400)


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def test_a_phone_acknowledges_by_the_link_with_a_note_once(dashboard: Running, browser: Browser,
                                                                  mosquitto: Mosquitto) -> None:
    since = round(time.time() - 420, 3)
    state = alert_state("firing", since, peak=-3.1)
    await publish(mosquitto, TOPIC, json.dumps(state), retain=True)
    ARTIFACTS.mkdir(exist_ok=True)
    async with engine(mosquitto, state) as got:
        url = ack_url(dashboard, since)
        ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,  # type: ignore[arg-type]
                                        bypass_csp=True)  # to inject axe-core
        page = await ctx.new_page()
        await page.goto(url)  # no login
        for _ in range(50):  # the dashboard may not have taken the retained alert in yet
            if await page.get_attribute("body", "data-outcome") == "form":
                break
            await asyncio.sleep(0.1)
            await page.reload()
        assert await page.get_attribute("body", "data-outcome") == "form"
        card = await page.locator(".alertcard").inner_text()
        for text in (RULE, SERIES, "firing", "-4.2", "-3.1", "Since"):
            assert text in card, (text, card)
        button = page.get_by_role("button", name="Acknowledge")
        box = await button.bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 300  # a thumb finds it on a 390 px screen
        await page.screenshot(path=str(ARTIFACTS / "ack-link-phone.png"), full_page=True)
        assert await axe_violations(page) == []
        await page.fill("textarea[name=note]", "closed the door, moved stock to freezer 2")
        await button.tap()
        await page.wait_for_selector("body[data-outcome=done]")
        assert (await page.locator("h1").inner_text()).startswith("Acknowledged by ana at ")
        await page.screenshot(path=str(ARTIFACTS / "ack-link-phone-done.png"), full_page=True)
        await eventually(lambda: bool(got))
        topic, ack = got[0]
        assert topic == f"vigil/ack/{KEY}"
        assert ack["by"] == "ana" and ack["via"] == "link" and ack["comment"] == ""
        assert abs(ack["episode"] - since) < 1e-6 and ack["note"] == "closed the door, moved stock to freezer 2"
        # The same link again: refused, saying who used it and when.
        await page.goto(url)
        assert await page.get_attribute("body", "data-outcome") == "used"
        assert "ana acknowledged with it at" in await page.inner_text("main")
        await page.screenshot(path=str(ARTIFACTS / "ack-link-phone-used.png"), full_page=True)
        assert await axe_violations(page) == []
        async with dashboard.client() as c:
            again = await c.post(url.removeprefix(dashboard.base), content=b"")  # as ntfy's button would
        assert again.status_code == 410 and "already used" in again.text
        await asyncio.sleep(0.3)
        assert len(got) == 1  # nothing published for the replay
        await ctx.close()


async def test_an_empty_post_as_ntfy_sends_acknowledges(dashboard: Running, mosquitto: Mosquitto) -> None:
    since = round(time.time() - 300, 3)
    state = alert_state("firing", since)
    await publish(mosquitto, TOPIC, json.dumps(state), retain=True)
    async with engine(mosquitto, state) as got, dashboard.client() as c:
        path = ack_url(dashboard, since, to="bob").removeprefix(dashboard.base)
        for _ in range(50):
            r = await c.post(path, content=b"")
            if r.status_code != 404:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200 and "Acknowledged by bob" in r.text
        await eventually(lambda: bool(got))
        assert got[0][1]["by"] == "bob" and got[0][1]["note"] is None


async def test_a_cleared_latched_alarm_waits_for_an_acknowledgement(dashboard: Running, browser: Browser,
                                                                     mosquitto: Mosquitto) -> None:
    since = round(time.time() - 3600, 3)
    state = alert_state("cleared", since, peak=-3.5, ended=since + 1800, value=-17.9,
                        message="freezer/t0 is back to -17.9 °C", notes=[{"by": "ana", "text": "door was open",
                                                                           "at": since + 600}])
    await publish(mosquitto, TOPIC, json.dumps(state), retain=True)
    async with engine(mosquitto, state) as got:
        page = await logged_in(browser, dashboard, DESKTOP)
        await page.wait_for_function(f"() => document.querySelector('{tile(SERIES)}')?.dataset.condition === 'cleared'",
                                     timeout=5000)
        assert "Cleared, not acknowledged" in await page.locator(tile(SERIES)).inner_text()
        assert "cleared, not acknowledged" in (await page.locator("#summary").inner_text()).lower()
        assert "worst -3.5" in await page.locator(tile(SERIES)).inner_text()
        await page.screenshot(path=str(ARTIFACTS / "overview-cleared-not-acknowledged.png"))
        await page.goto(dashboard.base + "/alerts")
        await page.wait_for_selector("body[data-ready=yes]")
        row = page.locator(f'#current tr[data-key="{KEY}"]')
        text = await row.inner_text()
        assert "Cleared, not acknowledged" in text and "worst -3.5 °C" in text and "lasted 30 min" in text, text
        assert "door was open" in text
        await page.screenshot(path=str(ARTIFACTS / "alerts-cleared-not-acknowledged.png"), full_page=True)
        async with dashboard.client() as c:
            await dashboard.login(c)
            api = (await c.get("/api/v1/alerts")).json()["current"][0]
        assert (api["state"], api["peak"], api["duration"], api["latched"]) == ("cleared", -3.5, 1800, True)
        # A note, then the acknowledgement, from the page.
        await row.get_by_role("button", name="Add note").click()
        await page.locator("#note-dialog textarea").fill("defrosted and checked the seal")
        await page.locator("#note-dialog").get_by_role("button", name="Add note").click()
        await page.wait_for_function(
            f"() => document.querySelector('#current tr[data-key=\"{KEY}\"] .notes')?.textContent"
            ".includes('defrosted and checked the seal')", timeout=5000)
        topic, note = got[0]
        assert topic == f"vigil/notes/{KEY}" and note["by"] == "admin" and note["id"]
        await row.get_by_role("button", name="Acknowledge").click()
        await page.get_by_role("dialog").get_by_role("button", name="Acknowledge").click()
        # The engine resolves it: it leaves "Now".
        await page.wait_for_function(f"() => !document.querySelector('#current tr[data-key=\"{KEY}\"]')", timeout=5000)
        assert got[1][0] == f"vigil/ack/{KEY}" and got[1][1]["via"] == "dashboard"
        await page.context.close()


ALTERED = ["x", "%00", "a" * 5000, ".", "..%2F..%2Fetc%2Fpasswd", "%C3%BC.%C3%BC", "e30.AAAA",
           "eyJrIjoiYS9iIn0." + "A" * 22]


async def test_hostile_links_and_bodies_through_the_running_dashboard(dashboard: Running, mosquitto: Mosquitto) -> None:
    since = round(time.time() - 300, 3)
    await publish(mosquitto, TOPIC, json.dumps(alert_state("firing", since)), retain=True)
    good = ack_url(dashboard, since).removeprefix(dashboard.base)
    async with dashboard.client() as c:
        for token in ALTERED:
            for method in ("GET", "POST", "HEAD"):
                r = await c.request(method, f"/ack/{token}", params={"note": "x" * 3000, "next": "//evil"})
                assert r.status_code in (400, 403, 404, 405), (method, token[:40], r.status_code)
                assert "freezer" not in r.text
        expired = ack_url(dashboard, since, expires=time.time() - 1).removeprefix(dashboard.base)
        r = await c.get(expired)
        assert r.status_code == 410 and "expired" in r.text and "freezer" not in r.text
        limit = dashboard.config.dashboard.max_body_bytes
        r = await c.post(good, content=b"note=" + b"x" * (limit + 1),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413
        for body, ctype, status in ((b"note=" + b"y" * 2001, "application/x-www-form-urlencoded", 400),
                                    (b"\xff\xfe\x00", "application/x-www-form-urlencoded", 400),
                                    (b'{"note": 1e999}', "application/json", 400),
                                    (b"[" * 100_000, "application/json", 400),
                                    (b"<x/>", "text/xml", 415)):
            r = await c.post(good, content=body, headers={"Content-Type": ctype})
            assert r.status_code == status, (body[:20], r.status_code, r.text[:200])
        # Still usable after every refusal.
        for _ in range(50):
            r = await c.post(good, data={"note": "fine"})
            if r.status_code != 404:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200, r.text
        assert (await c.get("/api/v1/health")).status_code == 200


async def test_the_link_page_is_readable_without_a_session_but_the_dashboard_is_not(dashboard: Running) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base, follow_redirects=False) as c:
        assert (await c.get("/alerts")).status_code == 303  # the rest still needs a login
        assert (await c.get("/api/v1/oncall")).status_code == 401
        assert (await c.post("/api/v1/alerts/a/b/c/d/notes", json={"text": "x"})).status_code == 401


ONCALL_RULES = """\
receivers:
  anna: json://127.0.0.1:9/anna
  ben: json://127.0.0.1:9/ben
schedules:
  kitchen:
    rotation: daily
    handover: "07:00"
    start: "2026-01-01"
    people: [anna, ben]
rules: []
"""


@pytest.fixture
async def scheduled(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    """A dashboard whose rules name an on-call schedule, its store holding a day of readings, the engine's state
    file (where reports are sealed) in the test's folder."""
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    store.write(history(time.time()))
    base = make_config(mosquitto, "memory://", tmp_path)
    (tmp_path / "rules.yaml").write_text(ONCALL_RULES)
    config = base.model_copy(update={
        "alerting": base.alerting.model_copy(update={"state": str(tmp_path / "alerts.db")}),
        "dashboard": base.dashboard.model_copy(update={"timezone": "Europe/Berlin"})})
    try:
        async with running_dashboard(config, store) as run:
            yield run
    finally:
        store.close()


async def test_the_on_call_panel_says_who_now_and_next(scheduled: Running, browser: Browser) -> None:
    page = await logged_in(browser, scheduled, PHONE)
    await page.goto(scheduled.base + "/alerts")
    await page.wait_for_selector("body[data-ready=yes]")
    item = page.locator('#oncall li[data-schedule="kitchen"]')
    await item.wait_for(timeout=5000)
    text = await item.inner_text()
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    now = dt.datetime.now(berlin)
    first = now.date() - dt.timedelta(days=1 if now.hour < 7 else 0)
    person = "anna" if (first - dt.date(2026, 1, 1)).days % 2 == 0 else "ben"
    other = "ben" if person == "anna" else "anna"
    assert text.splitlines()[:2] == ["kitchen", person], text
    assert f"next: {other}" in text and "07:00" in text and ("CET" in text or "CEST" in text or "GMT+" in text), text
    await page.screenshot(path=str(ARTIFACTS / "alerts-on-call-phone.png"), full_page=True)
    async with scheduled.client() as c:
        await scheduled.login(c)
        data = (await c.get("/api/v1/oncall")).json()
    [kitchen] = data["schedules"]
    assert kitchen["person"] == person and kitchen["next_person"] == other
    assert dt.datetime.fromtimestamp(kitchen["until"], berlin).strftime("%H:%M") == "07:00"
    await page.context.close()


async def test_a_report_is_downloaded_as_pdf_and_csv(scheduled: Running, browser: Browser, tmp_path: Path) -> None:
    page = await logged_in(browser, scheduled, DESKTOP)
    await page.goto(scheduled.base + "/reports")
    await page.wait_for_selector("body[data-ready=yes]")
    await page.check('input[name=unit][value="freezer/t0/temperature"]')
    await page.select_option("select[name=interval]", "1h")
    yesterday = (dt.datetime.now(zoneinfo.ZoneInfo("Europe/Berlin")) - dt.timedelta(days=1)).date().isoformat()
    await page.fill("input[name=date]", yesterday)
    await page.screenshot(path=str(ARTIFACTS / "reports-page.png"), full_page=True)
    async with page.expect_download(timeout=60000) as pdf_info:
        await page.get_by_role("button", name="Download PDF").click()
    pdf = await pdf_info.value
    assert pdf.suggested_filename == f"vigil-report-{yesterday}.pdf"
    pdf_path = tmp_path / "r.pdf"
    await pdf.save_as(pdf_path)
    reader = pypdf.PdfReader(pdf_path)
    assert "freezer/t0/temperature" in "".join(p.extract_text() for p in reader.pages)
    async with page.expect_download(timeout=60000) as csv_info:
        await page.get_by_role("button", name="Download CSV").click()
    csv_path = tmp_path / "r.csv"
    await (await csv_info.value).save_as(csv_path)
    text = csv_path.read_text()
    assert "freezer/t0/temperature" in text and len(text.splitlines()) > 10
    assert "Downloaded vigil-report-" in await page.locator('[data-role="result"]').inner_text()
    # Nothing chosen, and a period not begun: said on the page, no download.
    await page.uncheck('input[name=unit][value="freezer/t0/temperature"]')
    await page.get_by_role("button", name="Download PDF").click()
    assert "at least one sensor" in await page.locator('[data-role="result"]').inner_text()
    await page.check('input[name=unit][value="freezer/t0/temperature"]')
    await page.fill("input[name=date]", "2999-01-01")
    await page.get_by_role("button", name="Download PDF").click()
    await page.wait_for_function("() => document.querySelector('[data-role=result]').textContent.includes('not begun')")
    await page.context.close()


async def test_hostile_report_and_on_call_queries_through_the_running_dashboard(scheduled: Running) -> None:
    async with scheduled.client() as c:
        csrf = await scheduled.login(c)
        h = {"X-CSRF-Token": csrf}
        for body in ({"units": ["freezer/t0/temperature"] * 3, "date": "2026-01-01"},
                     {"units": ["freezer/t0/temperature"], "date": "2026-01-01", "interval": "1e999h"},
                     {"units": ["\u202efreezer/t0/temperature"], "date": "2026-01-01"},
                     {"units": ["freezer/t0/temperature"], "date": "1969-12-31"},
                     {"units": ["freezer/t0/temperature"], "date": "2026-01-01", "title": "x" * 201},
                     {"units": "freezer/t0/temperature", "date": "2026-01-01"}):
            r = await c.post("/api/v1/reports", json=body, headers=h)
            assert 400 <= r.status_code < 500 and r.json()["error"], (body, r.status_code, r.text[:200])
        # A period with no readings: the report's own sentence, nothing sealed.
        r = await c.post("/api/v1/reports", json={"units": ["freezer/t0/temperature"], "date": "2020-01-01"},
                         headers=h)
        assert r.status_code == 422 and "no readings" in r.json()["error"], r.text
        r = await c.get("/api/v1/oncall", params={"now": "nan", "zone": "../../etc"})
        assert r.status_code == 200 and r.json()["schedules"][0]["schedule"] == "kitchen"
