"""Latched alarms in the live picture and the API, corrective-action notes, who is on call and the Reports API,
over in-memory parts (our own Rules and Reports ports recorded, a recording publisher, a manual clock)."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.live import LiveState
from dashboard.ports import OnCall, ReportFile, ReportRefused
from dashboard.reports import period_bounds
from tests.support.dashboard_app import NOW, Harness, RecordingPublisher, make_config
from vigil.app.dashboard_wiring import EngineRules, create_dashboard
from vigil.core.clock import ManualClock
from vigil.core.event import Event
from vigil.core.stores import MemoryStore, Store

KEY = "warm/freezer/t0/temperature"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


class ScheduledRules(EngineRules):
    """The engine's rules port with on-call answered from a fixed list (alerting's schedules are tested there)."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, Any]] = []

    def on_call(self, path: Path, now: float, zone: dt.tzinfo) -> list[OnCall]:
        self.asked.append((now, zone))
        return [OnCall("kitchen", "ana", NOW + 3600, "bob", NOW + 3600), OnCall("night", None)]


class RecordedReports:
    """Our Reports port in memory: records what was asked and answers a small file."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def make(self, store: Store, units: list[str], start: float, end: float, interval: float, zone: dt.tzinfo,
             fmt: str, title: str = "") -> ReportFile:
        self.asked.append({"units": units, "start": start, "end": end, "interval": interval, "zone": zone,
                           "fmt": fmt, "title": title})
        if title == "refuse":
            raise ReportRefused("nothing stored for freezer/t0/temperature in that period")
        return ReportFile(f"r.{fmt}", "text/csv" if fmt == "csv" else "application/pdf", b"%PDF-1.4 fake")


@pytest.fixture
async def h17(tmp_path: Path) -> AsyncIterator[tuple[Harness, ScheduledRules, RecordedReports]]:
    config = make_config(tmp_path, timezone="Europe/Berlin")
    store = MemoryStore()
    store.write([Event("freezer", "t0", "temperature", -18.0, NOW - 60, "°C")])
    rules, reports = ScheduledRules(), RecordedReports()
    clock = ManualClock(NOW)
    live = LiveState(config.mqtt.topics)
    app = create_dashboard(config, store=store, publisher=RecordingPublisher(), live=live, clock=clock, rules=rules,
                           reports=reports)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield Harness(client, store, app.state.ctx.publisher, live, clock, config), rules, reports


def cleared(**extra: object) -> bytes:
    return json.dumps({"id": "t2", "rule": "warm", "series": "freezer/t0/temperature", "state": "cleared",
                       "previous": "firing", "at": NOW - 100, "severity": "critical", "message": "back to -18 °C",
                       "since": NOW - 1900, "value": -17.9, "peak": -3.5, "ended": NOW - 100, "latched": True,
                       "acknowledged_by": None, "ack_comment": "",
                       "notes": [{"by": "ana", "text": "door was open", "at": NOW - 500}], **extra}).encode()


async def test_a_cleared_latched_alert_is_current_with_its_peak_duration_and_notes(h17: Any) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    a = h.live.alerts[KEY]
    assert (a["state"], a["latched"], a["peak"], a["ended"], a["duration"]) == ("cleared", True, -3.5, NOW - 100, 1800)
    assert a["notes"] == [{"by": "ana", "text": "door was open", "at": NOW - 500}]
    assert "acknowledged_by" not in a
    assert h.live.series_state("freezer/t0/temperature") == "cleared"
    await h.login()
    data = (await h.client.get("/api/v1/alerts")).json()
    assert [x["key"] for x in data["current"]] == [KEY] and data["current"][0]["duration"] == 1800
    assert data["current"][0]["condition"] == "cleared, not acknowledged"
    # Acknowledged: the engine publishes resolved; it leaves "now".
    h.live.handle(f"vigil/alerts/{KEY}", cleared(state="resolved", acknowledged_by="ana",
                                                 acknowledged_at=NOW - 10), NOW)
    assert h.live.alerts[KEY]["acknowledged_at"] == NOW - 10
    assert (await h.client.get("/api/v1/alerts")).json()["current"] == []


@pytest.mark.parametrize("notes", [None, "x", [1, {"text": 5}, {"by": "a" * 999, "text": "t" * 5000, "at": "nan"}],
                                   [{"text": str(i)} for i in range(100)]])
async def test_hostile_notes_and_fields_on_the_bus_are_bounded(h17: Any, notes: object) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(notes=notes, peak="hot", ended=None), NOW)
    a = h.live.alerts[KEY]
    assert "peak" not in a and "ended" not in a and "duration" not in a
    assert len(a["notes"]) <= 20
    assert all(len(n["by"]) <= 64 and len(n["text"]) <= 2000 and (n["at"] is None or isinstance(n["at"], float))
               for n in a["notes"])
    if isinstance(notes, list) and len(notes) == 100:
        assert [n["text"] for n in a["notes"]] == [str(i) for i in range(80, 100)]  # the newest 20


async def test_an_ack_of_an_earlier_excursion_is_not_shown_as_acknowledging_this_one(h17: Any) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    h.live.handle(f"vigil/ack/{KEY}", json.dumps({"by": "ana", "episode": NOW - 99999, "via": "link"}).encode(), NOW)
    assert "acknowledged_by" not in h.live.alerts[KEY]
    h.live.handle(f"vigil/ack/{KEY}", json.dumps({"by": "ana", "episode": NOW - 1900, "via": "link"}).encode(), NOW)
    assert h.live.alerts[KEY]["acknowledged_by"] == "ana"


async def test_a_cleared_alert_can_be_acknowledged_from_the_dashboard(h17: Any) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    csrf = await h.login()
    r = await h.client.post(f"/api/v1/alerts/{KEY}/ack", json={"comment": "checked"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    topic, payload, qos, _ = h.publisher.sent[-1]
    assert topic == f"vigil/ack/{KEY}" and qos == 1 and json.loads(payload)["via"] == "dashboard"


async def test_a_note_is_published_for_the_engine_with_an_id_and_who(h17: Any) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    csrf = await h.login()
    r = await h.client.post(f"/api/v1/alerts/{KEY}/notes", json={"text": "  moved stock to freezer 2 "},
                            headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    topic, payload, qos, retain = h.publisher.sent[-1]
    note = json.loads(payload)
    assert topic == f"vigil/notes/{KEY}" and qos == 1 and not retain
    assert note["by"] == "admin" and note["text"] == "moved stock to freezer 2" and 8 <= len(note["id"]) <= 64


@pytest.mark.parametrize(("body", "status", "words"), [
    (b'{"text": ""}', 422, "not valid"),
    (b'{"text": "   "}', 422, "empty"),
    (json.dumps({"text": "x" * 2001}).encode(), 422, "not valid"),
    (b'{"text": "a\\u0000b"}', 422, "control character"),
    (b'{"text": "door\\u200bclosed"}', 422, "U+200B"),
    (b'{"text": 5}', 422, "not valid"),
    (b'{"text": "ok", "by": "mallory"}', 422, "not valid"),
    (b"text=hello", 422, "not valid"),
    (b'{"text": NaN}', 422, "not valid"),
    (b"[" * 200 + b"]" * 200, 400, "deep"),
])
async def test_hostile_note_bodies_get_a_4xx_that_says_why(h17: Any, body: bytes, status: int, words: str) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    csrf = await h.login()
    r = await h.client.post(f"/api/v1/alerts/{KEY}/notes", content=body,
                            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert r.status_code == status and words in r.json()["error"], r.text
    assert h.publisher.sent == []


async def test_notes_need_the_role_that_acknowledges_and_a_known_alert(h17: Any) -> None:
    h, _, _ = h17
    h.live.handle(f"vigil/alerts/{KEY}", cleared(), NOW)
    csrf = await h.login("viewer", "viewer password 1")
    r = await h.client.post(f"/api/v1/alerts/{KEY}/notes", json={"text": "hi"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    csrf = await h.login()
    r = await h.client.post("/api/v1/alerts/nope/a/b/c/notes", json={"text": "hi"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404 and h.publisher.sent == []


async def test_who_is_on_call_now_and_next(h17: Any) -> None:
    h, rules, _ = h17
    assert (await h.client.get("/api/v1/oncall")).status_code == 401
    await h.login("viewer", "viewer password 1")
    data = (await h.client.get("/api/v1/oncall")).json()
    assert data["zone"] == "Europe/Berlin" and data["at"] == NOW
    assert data["schedules"][0] == {"schedule": "kitchen", "person": "ana", "until": NOW + 3600,
                                    "next_person": "bob", "next_from": NOW + 3600}
    assert data["schedules"][1]["person"] is None
    assert rules.asked == [(NOW, BERLIN)]


def test_periods_are_the_sites_calendar_across_dst() -> None:
    day = period_bounds("day", dt.date(2026, 3, 29), BERLIN)  # spring forward: 23 hours
    assert day[1] - day[0] == 23 * 3600
    assert dt.datetime.fromtimestamp(day[0], BERLIN).hour == 0
    week = period_bounds("week", dt.date(2026, 12, 3), BERLIN)  # a Thursday
    assert dt.datetime.fromtimestamp(week[0], BERLIN).date() == dt.date(2026, 11, 30)
    assert week[1] - week[0] == 7 * 86400
    month = period_bounds("month", dt.date(2026, 2, 14), BERLIN)
    assert [dt.datetime.fromtimestamp(t, BERLIN).date() for t in month] == [dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    dec = period_bounds("month", dt.date(2026, 12, 31), BERLIN)
    assert dt.datetime.fromtimestamp(dec[1], BERLIN).date() == dt.date(2027, 1, 1)


async def test_a_report_is_made_through_the_port_and_downloaded(h17: Any) -> None:
    h, _, reports = h17
    csrf = await h.login("viewer", "viewer password 1")
    r = await h.client.post("/api/v1/reports", json={"units": ["freezer/t0/temperature"], "period": "week",
                                                     "date": "2023-11-14", "interval": "1h", "format": "csv"},
                            headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="r.csv"' and r.content == b"%PDF-1.4 fake"
    [asked] = reports.asked
    assert asked["units"] == ["freezer/t0/temperature"] and asked["interval"] == 3600 and asked["fmt"] == "csv"
    assert (asked["start"], asked["end"]) == period_bounds("week", dt.date(2023, 11, 14), BERLIN)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"units": [], "date": "2023-11-14"}, 422, "not valid"),
    ({"units": ["x"] * 101, "date": "2023-11-14"}, 422, "not valid"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-02-30"}, 422, "YYYY-MM-DD"),
    ({"units": ["freezer/t0/temperature"], "date": "9999-12-31"}, 422, "out of range"),
    ({"units": ["freezer/t0/temperature"], "date": "0001-01-01"}, 422, "out of range"),
    ({"units": ["freezer/t0/temperature"], "date": "9000-01-01"}, 422, "not begun"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-11-14", "interval": "1s"}, 422, "between 1m and 1d"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-11-14", "interval": "soon"}, 422, "interval"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-11-14", "format": "docx"}, 422, "not valid"),
    ({"units": ["../../etc/passwd"], "date": "2023-11-14"}, 422, "no stored series"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-11-14", "title": "refuse"}, 422, "nothing stored"),
    ({"units": ["freezer/t0/temperature"], "date": "2023-11-14", "period": "year"}, 422, "not valid"),
])
async def test_hostile_report_requests_get_a_4xx(h17: Any, body: dict[str, Any], status: int, words: str) -> None:
    h, _, _ = h17
    csrf = await h.login()
    r = await h.client.post("/api/v1/reports", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == status and words in r.json()["error"], r.text


async def test_the_reports_page_lists_a_form(h17: Any) -> None:
    h, _, _ = h17
    await h.login()
    page = await h.client.get("/reports")
    assert page.status_code == 200 and 'id="report"' in page.text and "Download PDF" in page.text


async def test_without_the_report_port_the_page_and_api_say_it_is_not_available(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    app = create_dashboard(config, store=MemoryStore(), publisher=RecordingPublisher(),
                           live=LiveState(config.mqtt.topics), reports=None)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        bare = Harness(c, MemoryStore(), RecordingPublisher(), app.state.ctx.live, app.state.ctx.clock, config)
        csrf = await bare.login()
        assert "not available" in (await c.get("/reports")).text
        r = await c.post("/api/v1/reports", json={"units": ["a/b/c"], "date": "2023-11-14"},
                         headers={"X-CSRF-Token": csrf})
        assert r.status_code == 503 and "not available" in r.json()["error"]
