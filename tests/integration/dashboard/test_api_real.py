"""The API over a real uvicorn, the private Mosquitto and the real stores (SQLite file, influxd 1.x)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import aiomqtt
import pytest

from dashboard.auth import sign_request
from tests.support.dashboard_served import HMAC_SECRET, TOKEN, eventually, listener, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores import MemoryStore, Store

pytestmark = pytest.mark.integration

HOSTILE = ["freezer' OR '1'='1", 'a"b', "back\\slash", "semi;colon DROP MEASUREMENT temperature",
           "<img src=x onerror=alert(1)>", "ümlaut ❄", "space name", "regex.*"]


def ev(device: str, value: float, ts: float, sensor: str = "t0") -> Event:
    return Event(device=device, sensor=sensor, metric="temperature", value=value, ts=ts, unit="°C")


async def test_hostile_names_are_stored_and_queried_exactly(mosquitto: Mosquitto, store: Store,
                                                            tmp_path: Path) -> None:
    now = time.time()
    store.write([ev(name, float(i), now - 60) for i, name in enumerate(HOSTILE)] + [ev("boiler", 99.0, now - 60)])
    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, store) as run, run.client() as c:
        await run.login(c)
        for i, name in enumerate(HOSTILE):
            r = await c.get("/api/v1/history", params={"device": name, "sensor": "t0", "range": "1h"})
            assert r.status_code == 200, (name, r.text)
            assert [p[1] for p in r.json()["points"]] == [float(i)], name
            r = await c.get("/api/v1/latest", params={"device": name})
            assert [row["value"] for row in r.json()] == [float(i)], name
        # Injection attempts find nothing, and leak no other series.
        for attack in ["x' OR device='boiler", "boiler' --", 'boiler" OR "1"="1', "boiler\\", ".*"]:
            r = await c.get("/api/v1/history", params={"device": attack, "sensor": "t0", "range": "1h"})
            assert r.status_code == 200 and r.json()["points"] == [], attack
            r = await c.get("/api/v1/history", params={"device": "boiler", "sensor": attack, "range": "1h"})
            assert r.status_code == 200 and r.json()["points"] == [], attack
        r = await c.get("/api/v1/history", params={"device": "/boiler/", "sensor": "t0", "range": "1h"})
        assert r.status_code == 422 and "device" in r.json()["error"], "a regex literal is not a device name"
        r = await c.get("/api/v1/history", params={"device": "boiler", "sensor": "t0", "metric": "temperature",
                                                   "aggregate": "mean) FROM x; --", "range": "1h"})
        assert r.status_code == 422
        r = await c.get("/api/v1/history", params={"device": "boiler", "sensor": "t0", "range": "1h"})
        assert [p[1] for p in r.json()["points"]] == [99.0], "the attacks above did no harm"


async def test_history_of_a_week_is_downsampled_by_the_store(mosquitto: Mosquitto, store: Store,
                                                            tmp_path: Path) -> None:
    now = time.time()
    start = now - 7 * 86400 + 5  # inside the server's "last 7 days", a moment later
    store.write([ev("freezer", -18 + (i % 60) / 10, start + i * 10) for i in range(60_480)])
    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, store) as run, run.client() as c:
        await run.login(c)
        r = await c.get("/api/v1/history", params={"device": "freezer", "sensor": "t0", "range": "7d"})
        h = r.json()
        assert r.status_code == 200 and 600 <= len(h["points"]) <= 800
        assert h["stats"]["count"] == 60_480
        assert h["stats"]["min"] == pytest.approx(-18) and h["stats"]["max"] == pytest.approx(-12.1)


async def test_ingest_reaches_the_broker_and_errors_do_not(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = make_config(mosquitto, "memory://", tmp_path)

    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_dashboard(config, MemoryStore()) as run, run.client() as c, \
            listener(mosquitto, "vigil/readings/#") as got:
        for body, headers, status in [
            (b"{bad", auth, 422),
            (b'{"value": NaN, "ts": 1, "unit": "C"}', auth, 422),
            (b'{"value": 1, "ts": 1, "unit": "C"}', {"Authorization": "Bearer wrong-wrong-wrong-1"}, 401),
            (b'{"value": 1, "ts": 1, "unit": "C"}', {}, 401),
            (b" " * 1_100_000, auth, 413),
        ]:
            r = await c.post("/api/v1/readings?device=d1&sensor=s1", content=body, headers=headers)
            assert r.status_code == status, r.text
            assert r.json()["error"]
        now = int(time.time())
        batch = [{"value": i, "ts": now - 60 + i, "unit": "°C", "seq": i} for i in range(50)]
        r = await c.post("/api/v1/readings?device=d1&sensor=s1", json=batch, headers=auth)
        assert r.status_code == 202 and r.json()["accepted"] == 50
        # The answer came after the broker acknowledged: every reading is there to a subscriber.
        assert await eventually(lambda: len(got) >= 50, timeout=5)
        await asyncio.sleep(0.3)
        assert len(got) == 50, "nothing from the refused requests reached the broker"
        assert sorted(p["seq"] for _, p in got) == list(range(50))
        assert {t for t, _ in got} == {"vigil/readings/d1/s1"}


async def test_ack_and_silence_go_over_mqtt(mosquitto: Mosquitto, tmp_path: Path) -> None:

    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, MemoryStore()) as run, run.client() as c:
        csrf = await run.login(c)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as engine:
            state = {"id": "x1", "rule": "hot", "series": "freezer/t0/temperature", "state": "firing",
                     "previous": "pending", "at": time.time(), "severity": "critical", "message": "warm",
                     "since": time.time()}
            await engine.publish("vigil/alerts/hot/freezer/t0/temperature", json.dumps(state), qos=1, retain=True)
            for _ in range(100):
                if (await c.get("/api/v1/alerts")).json()["current"]:
                    break
                await asyncio.sleep(0.05)
        async with listener(mosquitto, "vigil/ack/#") as acks:
            r = await c.post("/api/v1/alerts/hot/freezer/t0/temperature/ack", json={"comment": "defrosting"},
                             headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200
            assert await eventually(lambda: bool(acks), timeout=5)
            assert acks[0][0] == "vigil/ack/hot/freezer/t0/temperature" and acks[0][1]["by"] == "admin"
        r = await c.post("/api/v1/silences", json={"matchers": {"device": "freezer"}, "duration": "30m"},
                         headers={"X-CSRF-Token": csrf})
        sid = r.json()["id"]
        async with listener(mosquitto, "vigil/silences/+") as silences:  # retained: a newcomer sees it
            assert await eventually(lambda: bool(silences), timeout=5)
            assert silences[0][1]["matchers"] == {"device": "freezer"}
        for _ in range(100):
            if (await c.get("/api/v1/silences")).json():
                break
            await asyncio.sleep(0.05)
        r = await c.delete(f"/api/v1/silences/{sid}", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        async with listener(mosquitto, "vigil/silences/+") as after:
            await asyncio.sleep(0.3)
            assert after == [], "the retained silence is gone"


async def test_broker_outage_is_reported_and_survived(mosquitto: Mosquitto, tmp_path: Path) -> None:

    config = make_config(mosquitto, "memory://", tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = json.dumps({"value": 1, "ts": int(time.time()), "unit": "°C"}).encode()
    async with running_dashboard(config, MemoryStore()) as run, run.client() as c:
        mosquitto.stop()
        for _ in range(100):
            if (await c.get("/api/v1/health")).status_code == 503:
                break
            await asyncio.sleep(0.05)
        h = await c.get("/api/v1/health")
        assert h.status_code == 503 and h.json()["broker"] is False
        r = await c.post("/api/v1/readings?device=d&sensor=s", content=body, headers=auth)
        assert r.status_code == 503 and "broker" in r.json()["error"]
        mosquitto.start()
        for _ in range(400):
            if (await c.get("/api/v1/health")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        r = await c.post("/api/v1/readings?device=d&sensor=s", content=body, headers=auth)
        assert r.status_code == 202


async def test_server_sent_events_carry_a_publish(mosquitto: Mosquitto, tmp_path: Path) -> None:

    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, MemoryStore()) as run, run.client() as c:
        await run.login(c)
        async with c.stream("GET", "/api/v1/live") as stream:
            lines = stream.aiter_lines()
            assert (await lines.__anext__()) == "event: snapshot"
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
                await pub.publish("vigil/events/freezer/temperature",
                                  ev("freezer", -17.5, time.time()).to_json(), qos=1)

            async def next_event() -> dict:  # type: ignore[type-arg]
                kind = ""
                async for line in lines:
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "events":  # the values changed in one tick
                        return json.loads(line[6:])[0]  # type: ignore[no-any-return]
                raise AssertionError("stream ended")
            try:
                data = await asyncio.wait_for(next_event(), 5)
            finally:
                await lines.aclose()  # type: ignore[attr-defined]
            assert data["device"] == "freezer" and data["value"] == -17.5


async def test_signed_ingest_is_published_once_and_a_replay_is_refused(mosquitto: Mosquitto, tmp_path: Path) -> None:

    config = make_config(mosquitto, "memory://", tmp_path)
    path = "/api/v1/readings?device=plc&sensor=tank"
    body = json.dumps({"value": 3.5, "ts": int(time.time()), "unit": "°C", "seq": 1}).encode()
    ts = int(time.time())
    headers = {"X-Vigil-Key": "plc", "X-Vigil-Timestamp": str(ts), "Content-Type": "application/json",
               "X-Vigil-Signature": sign_request(HMAC_SECRET, ts, path, body)}
    async with running_dashboard(config, MemoryStore()) as run, run.client() as c, \
            listener(mosquitto, "vigil/readings/#") as got:
        r = await c.post(path, content=body, headers=headers)
        assert r.status_code == 202 and r.json()["by"] == "plc"
        r = await c.post(path, content=body, headers=headers)
        assert r.status_code == 401 and "replay" in r.json()["error"]
        forged = {**headers, "X-Vigil-Signature": sign_request("not-the-secret-at-all", ts, path, body)}
        r = await c.post(path, content=body, headers=forged)
        assert r.status_code == 401 and r.json()["error"] == "bad signature"
        assert await eventually(lambda: bool(got))
        await asyncio.sleep(0.3)
        assert [t for t, _ in got] == ["vigil/readings/plc/tank"]


async def test_a_defect_is_a_logged_500_and_a_refusal_a_422_over_uvicorn(
        mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        def latest(self, metric: str | None = None, device: str | None = None) -> list[Event]:
            raise ValueError("a defect deep in a store, at /secret/path")

    caplog.set_level(logging.ERROR, "dashboard.app")
    config = make_config(mosquitto, "memory://", tmp_path)
    async with running_dashboard(config, Broken()) as run, run.client() as c:
        csrf = await run.login(c)
        r = await c.get("/api/v1/latest")
        assert r.status_code == 500 and r.json() == {
            "error": "internal error in the dashboard (a defect: its log says more)"}, r.text
        r = await c.post("/api/v1/silences", json={"matchers": {"device": "x"}, "duration": "400d"},
                         headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422 and r.json() == {"error": "duration must be between 1s and 366d"}, r.text
        r = await c.get("/api/v1/history", params={"device": "freezer", "sensor": "t0", "range": "soon"})
        assert r.status_code == 422 and r.json()["error"].startswith("range: "), r.text
    assert any("GET /api/v1/latest failed: ValueError: a defect deep in a store" in rec.getMessage()
               for rec in caplog.records)
