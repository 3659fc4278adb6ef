"""The read API and the actions, over a MemoryStore and a recording publisher."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from dashboard.api import choose_bucket
from dashboard.live import LiveState
from tests.support.dashboard_app import NOW, Harness, RecordingPublisher, make_config
from vigil.app.dashboard_wiring import create_dashboard
from vigil.core.event import Event
from vigil.core.stores import MemoryStore, StoreUnavailable
from vigil.core.topics import Topics


def ev(value: float, ts: float, device: str = "freezer", sensor: str = "t0", **kw: object) -> Event:
    return Event(device=device, sensor=sensor, metric="temperature", value=value, ts=ts, unit="°C", **kw)  # type: ignore[arg-type]


def alert(state: str, rule: str = "hot", series: str = "freezer/t0/temperature", **extra: object) -> bytes:
    body = {"id": f"{rule}-{state}", "rule": rule, "series": series, "state": state, "previous": "ok",
            "at": NOW - 60, "severity": "critical", "message": "too warm", "since": NOW - 120, **extra}
    return json.dumps(body).encode()


@pytest.mark.parametrize(("span", "points", "bucket"), [(3600, 800, 5), (86400, 800, 120), (7 * 86400, 800, 900),
                                                        (30 * 86400, 800, 3600), (10, 800, 1)])
def test_buckets_are_round_and_fit_the_points(span: float, points: int, bucket: float) -> None:
    assert choose_bucket(span, points) == bucket
    assert span / choose_bucket(span, points) <= points


async def test_history_is_downsampled_with_stats(harness: Harness) -> None:
    # 7 days at 10 s: 60,480 points.
    harness.store.write([ev(float(i % 100), NOW - 7 * 86400 + i * 10) for i in range(60_480)])
    await harness.login()
    r = await harness.client.get("/api/v1/history?device=freezer&sensor=t0&range=7d")
    assert r.status_code == 200
    h = r.json()
    assert h["bucket"] == 900 and len(h["points"]) <= 800
    assert h["stats"]["count"] == 60_480
    assert h["stats"]["min"] == 0 and h["stats"]["max"] == 99
    assert h["stats"]["mean"] == pytest.approx(sum(i % 100 for i in range(60_480)) / 60_480)
    assert all(lo[1] <= m[1] <= hi[1] for lo, m, hi in zip(h["min"], h["points"], h["max"]))


async def test_history_custom_range_and_alerts_on_the_chart(harness: Harness) -> None:
    harness.store.write([ev(1.0, NOW - 500), ev(3.0, NOW - 100)])
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    await harness.login()
    r = await harness.client.get(f"/api/v1/history?device=freezer&sensor=t0&start={NOW - 600}&end={NOW}&bucket=60")
    h = r.json()
    assert [p[1] for p in h["points"]] == [1.0, 3.0] and h["bucket"] == 60
    assert h["alerts"] == [{"at": NOW - 60, "state": "firing", "rule": "hot"}]
    r = await harness.client.get("/api/v1/history?device=freezer&sensor=t0"
                                 "&start=2023-11-14T22:00:00Z&end=2023-11-14T22:13:20Z")
    assert r.status_code == 200 and r.json()["stats"]["count"] == 2


@pytest.mark.parametrize(("query", "words"), [
    ("device=freezer&sensor=t0&range=forever", "duration"),
    ("device=freezer&sensor=t0&start=100&end=50", "after"),
    ("device=freezer&sensor=t0&aggregate=drop", "aggregate"),
    ("device=freezer&sensor=t0&bucket=0.000001&range=30d", "1,000,000 buckets"),
    ("device=a%2Fb&sensor=t0", "device"),
    ("device=%24SYS&sensor=t0", "device"),
    ("device=freezer&sensor=t0&metric=temp%23", "metric"),
    ("sensor=t0", "device"),
])
async def test_bad_history_queries_get_422(harness: Harness, query: str, words: str) -> None:
    await harness.login()
    r = await harness.client.get(f"/api/v1/history?{query}")
    assert r.status_code == 422
    assert words in json.dumps(r.json())


async def test_latest_prefers_the_newer_live_value(harness: Harness) -> None:
    harness.store.write([ev(1.0, NOW - 100), ev(5.0, NOW - 100, sensor="t1")])
    harness.live.handle("vigil/events/freezer/temperature", ev(2.0, NOW - 10).to_json(), NOW)
    harness.live.handle("vigil/events/freezer/temperature", ev(0.5, NOW - 500, sensor="t1").to_json(), NOW)
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    await harness.login()
    rows = (await harness.client.get("/api/v1/latest")).json()
    assert [(r["sensor"], r["value"], r["state"]) for r in rows] == [("t0", 2.0, "firing"), ("t1", 5.0, "ok")]


async def test_devices_say_online_and_offline_leniently(harness: Harness) -> None:
    harness.store.write([ev(1.0, NOW, labels=(("site", "kitchen"),)), ev(1.0, NOW, device="pi-2")])
    harness.live.handle("vigil/status/freezer", b'{"state": "online", "version": "1.0", "ip": "10.0.0.2"}', NOW)
    harness.live.handle("vigil/status/pi-2", b"offline", NOW)
    harness.live.handle("vigil/status/pi-3", b'{"status": "ONLINE"}', NOW)
    harness.live.handle("vigil/status/pi-4", b"\xff garbage", NOW)
    await harness.login()
    devs = {d["device"]: d for d in (await harness.client.get("/api/v1/devices")).json()}
    assert devs["freezer"]["state"] == "online" and devs["freezer"]["labels"] == {"site": "kitchen"}
    assert devs["pi-2"]["state"] == "offline" and devs["pi-3"]["state"] == "online"
    assert devs["pi-4"]["state"] == "unknown"
    harness.live.handle("vigil/status/pi-2", b"", NOW)  # retained status cleared
    assert "pi-2" not in harness.live.devices


@pytest.mark.parametrize("payload", [b"{not json", b"[1,2]", b'{"value": "x"}', b"", b"x" * 100_000,
                                     b'{"device":"d","sensor":"s","metric":"m","value":NaN,"ts":1}'])
def test_bad_bus_messages_are_counted_not_raised(harness: Harness, payload: bytes) -> None:
    harness.live.handle("vigil/events/d/m", payload, NOW)
    harness.live.handle("vigil/alerts/r/d/s/m", payload or b"{}", NOW)
    assert harness.live.counters["bad_messages"] == 2
    assert harness.live.latest == {} and harness.live.alerts == {}


async def test_alerts_now_and_history_with_filters(harness: Harness) -> None:
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("pending"), NOW)
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing", at=NOW), NOW)
    harness.live.handle("vigil/alerts/cold/pi/t1/temperature", alert("firing", rule="cold", series="pi/t1/temperature",
                                                                      severity="warning"), NOW)
    await harness.login()
    data = (await harness.client.get("/api/v1/alerts")).json()
    assert [a["key"] for a in data["current"]] == ["hot/freezer/t0/temperature", "cold/pi/t1/temperature"]
    assert len(data["history"]) == 3
    data = (await harness.client.get("/api/v1/alerts?severity=warning")).json()
    assert [a["rule"] for a in data["current"]] == ["cold"]
    data = (await harness.client.get("/api/v1/alerts?state=pending")).json()
    assert data["current"] == [] and [a["state"] for a in data["history"]] == ["pending"]


async def test_acknowledge_publishes_who_on_the_ack_topic(harness: Harness) -> None:
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    csrf = await harness.login()
    r = await harness.client.post("/api/v1/alerts/hot/freezer/t0/temperature/ack", json={"comment": "on it"},
                                  headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    [(topic, payload, qos, retain)] = harness.publisher.sent
    assert topic == "vigil/ack/hot/freezer/t0/temperature" and qos == 1 and not retain
    assert json.loads(payload)["by"] == "admin" and json.loads(payload)["comment"] == "on it"
    # The bus echoes it back; the alert shows who acknowledged.
    harness.live.handle(topic, payload, NOW + 1)
    assert harness.live.alerts["hot/freezer/t0/temperature"]["acknowledged_by"] == "admin"
    r = await harness.client.post("/api/v1/alerts/nope/a/b/c/ack", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404


async def test_silence_is_retained_and_expires_with_an_empty_message(harness: Harness) -> None:
    csrf = await harness.login()
    h = {"X-CSRF-Token": csrf}
    r = await harness.client.post("/api/v1/silences", json={"matchers": {"device": "freezer"}, "duration": "2h",
                                                            "comment": "defrost"}, headers=h)
    assert r.status_code == 201
    sid = r.json()["id"]
    [(topic, payload, qos, retain)] = harness.publisher.sent
    assert topic == f"vigil/silences/{sid}" and retain and qos == 1
    body = json.loads(payload)
    assert body["until"] == NOW + 7200 and body["by"] == "admin" and body["matchers"] == {"device": "freezer"}
    harness.live.handle(topic, payload, NOW)
    assert (await harness.client.get("/api/v1/silences")).json()[0]["comment"] == "defrost"
    r = await harness.client.delete(f"/api/v1/silences/{sid}", headers=h)
    assert r.status_code == 200 and harness.publisher.sent[-1] == (topic, b"", 1, True)
    for bad in [{"matchers": {}}, {"matchers": {"device": "x"}, "duration": "forever"},
                {"matchers": {"device": "x"}, "duration": "400d"}]:
        r = await harness.client.post("/api/v1/silences", json=bad, headers=h)
        assert r.status_code == 422, bad


GOOD_RULES = "rules:\n  - name: freezer-warm\n    match: {device: freezer}\n    above: -10\n"


async def test_rules_check_reload_and_refusal(harness: Harness, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    csrf = await harness.login()
    h = {"X-CSRF-Token": csrf}
    r = await harness.client.post("/api/v1/rules/validate", json={"file": "rules.yaml", "text": GOOD_RULES}, headers=h)
    assert {k: r.json()[k] for k in ("ok", "issues", "warnings", "rules")} == {
        "ok": True, "issues": [], "warnings": [], "rules": ["freezer-warm"]}
    bad = "rules:\n  - name: x\n    above: warm\n"
    r = await harness.client.post("/api/v1/rules/validate", json={"file": "rules.yaml", "text": bad}, headers=h)
    assert r.json()["ok"] is False and r.json()["issues"][0].startswith("rules.yaml:3:")
    r = await harness.client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": bad}, headers=h)
    assert r.status_code == 422 and rules.read_text() == "rules: []\n" and harness.publisher.sent == []
    r = await harness.client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": GOOD_RULES}, headers=h)
    assert r.status_code == 200 and rules.read_text() == GOOD_RULES
    assert harness.publisher.sent[0][0] == "vigil/control/rules/reload"
    r = await harness.client.post("/api/v1/rules/reload", json={"file": "../etc/passwd", "text": GOOD_RULES},
                                  headers=h)
    assert r.status_code == 404
    harness.live.handle("vigil/alerts/freezer-warm/freezer/t0/temperature", alert("firing", rule="freezer-warm"), NOW)
    listed = (await harness.client.get("/api/v1/rules")).json()
    assert listed["rules"] == [{"name": "freezer-warm", "pending": 0, "firing": 1}]
    assert listed["files"][0]["text"] == GOOD_RULES


async def test_mute_windows_from_the_rules_files(harness: Harness, tmp_path: Path) -> None:
    windows = "mute_windows:\n  - {name: nights, start: '22:00', end: '07:00'}\n"
    (tmp_path / "rules.yaml").write_text(GOOD_RULES + windows)
    await harness.login()
    q = (await harness.client.get("/api/v1/mute-windows")).json()
    assert q["mute_windows"][0]["name"] == "nights"


async def test_openapi_document_lists_the_api(harness: Harness) -> None:
    await harness.login()
    doc = (await harness.client.get("/api/v1/openapi.json")).json()
    for path in ["/api/v1/readings", "/api/v1/history", "/api/v1/latest", "/api/v1/alerts", "/api/v1/rules/reload",
                 "/api/v1/health", "/api/v1/metrics", "/api/v1/silences"]:
        assert path in doc["paths"], path


async def test_pages_carry_untrusted_names_as_text(harness: Harness) -> None:
    await harness.login()
    r = await harness.client.get("/sensor/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/t0/temperature")
    assert r.status_code == 200
    assert "<img src=x" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


SECRET_RULES = GOOD_RULES + """receivers:
  ops: ["tgram://123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/987654", "ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}"]
"""


async def test_notification_secrets_are_hidden_and_kept_on_save(harness: Harness, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SECRET_RULES)
    csrf = await harness.login()
    shown = (await harness.client.get("/api/v1/rules")).json()["files"][0]["text"]
    assert "AAEhBOweik6ad9r" not in shown and "123456789" not in shown
    assert "tgram://hidden-" in shown and "ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}" in shown
    edited = shown.replace("above: -10", "above: -12")
    r = await harness.client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": edited},
                                  headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    saved = rules.read_text()
    assert "above: -12" in saved and "tgram://123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/987654" in saved


async def test_a_store_outage_is_a_503_that_says_so(harness: Harness) -> None:
    harness.live.set_connected(True)
    await harness.login()
    harness.store.available = False
    for path in ["/api/v1/latest", "/api/v1/history?device=freezer&sensor=t0", "/api/v1/devices"]:
        r = await harness.client.get(path)
        assert r.status_code == 503 and "store is not available" in r.json()["error"], path
        assert r.headers["retry-after"] == "5"


class DownStore(MemoryStore):
    def ping(self) -> None:
        raise StoreUnavailable(self.name, "down for the test")


async def test_health_says_when_the_store_is_down(tmp_path: Path) -> None:
    live = LiveState(Topics())
    live.set_connected(True)
    app = create_dashboard(make_config(tmp_path), store=DownStore(), publisher=RecordingPublisher(), live=live)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/health")
    assert r.status_code == 503 and r.json() == {"status": "degraded", "broker": True, "store": False}


async def test_a_huge_login_form_is_refused(harness: Harness) -> None:
    r = await harness.client.post("/login", content="username=admin&password=" + "x" * 10_000,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_a_browser_that_cannot_keep_up_is_told_to_resync(harness: Harness) -> None:
    sub = harness.live.subscribe()
    for i in range(1001):  # alert changes go out at once, one message each
        harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing", at=NOW + i), NOW)
    assert sub.overflowed and sub.queue.qsize() == 1000
    harness.live.close_all()
    assert harness.live.subscribers == 0


def test_an_older_reading_does_not_replace_the_current_value(harness: Harness) -> None:
    harness.live.handle("vigil/events/freezer/temperature", ev(2.0, NOW).to_json(), NOW)
    harness.live.handle("vigil/events/freezer/temperature", ev(1.0, NOW - 60).to_json(), NOW)
    assert harness.live.latest["freezer/t0/temperature"]["value"] == 2.0


def test_cleared_alerts_and_silences_disappear(harness: Harness) -> None:
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    harness.live.handle("vigil/silences/abc", b'{"matchers": {"device": "x"}, "until": 1e10}', NOW)
    harness.live.handle("vigil/alerts/hot/freezer/t0/temperature", b"", NOW)
    harness.live.handle("vigil/silences/abc", b"", NOW)
    assert harness.live.alerts == {} and harness.live.silences == {}
    harness.live.handle("vigil/silences/bad", b'{"matchers": "device=x"}', NOW)
    assert harness.live.silences == {} and harness.live.counters["bad_messages"] == 1
