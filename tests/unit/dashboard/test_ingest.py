"""POST /api/v1/readings: the API trigger. Valid readings reach the bus; nothing else does."""

from __future__ import annotations

import json

import pytest

from dashboard.auth import sign_request
from tests.support.dashboard_app import HMAC_SECRET, INGEST_TOKEN, NOW, VIEWER_TOKEN, Harness

AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
URL = "/api/v1/readings?device=freezer&sensor=t0"


async def post(h: Harness, body: bytes | str, url: str = URL,
               headers: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = await h.client.post(url, content=body if isinstance(body, bytes) else body.encode(),
                            headers={**AUTH, "Content-Type": "application/json", **(headers or {})})
    return r.status_code, r.json()


async def test_one_reading_is_published_as_contract_json_at_qos1(harness: Harness) -> None:
    status, body = await post(harness, '{"value": -18.5, "ts": 1700000000, "unit": "°C", "seq": 7}')
    assert (status, body) == (202, {"accepted": 1, "by": "webhook"})
    [(topic, payload, qos, retain)] = harness.publisher.sent
    assert topic == "vigil/readings/freezer/t0" and qos == 1 and not retain
    assert json.loads(payload) == {"value": -18.5, "ts": 1700000000.0, "unit": "°C", "metric": "temperature", "seq": 7}


async def test_a_batch_may_name_devices_per_reading(harness: Harness) -> None:
    batch = [{"device": "a", "sensor": "s1", "value": 1, "ts": "2023-11-14T22:13:20Z", "unit": "%",
              "metric": "humidity"},
             {"value": 2.5, "ts": NOW, "unit": "°C", "labels": {"site": "lab"}}]
    status, body = await post(harness, json.dumps(batch))
    assert status == 202 and body["accepted"] == 2
    assert [t for t, *_ in harness.publisher.sent] == ["vigil/readings/a/s1", "vigil/readings/freezer/t0"]
    assert json.loads(harness.publisher.sent[1][1])["labels"] == {"site": "lab"}


@pytest.mark.parametrize(("body", "words"), [
    ("{not json", "not JSON"),
    ('{"value": NaN, "ts": 1700000000, "unit": "C"}', "NaN"),
    ('{"value": "12", "ts": 1700000000, "unit": "C"}', "value"),
    ('{"value": 1e999, "ts": 1700000000, "unit": "C"}', "finite"),
    ('{"value": 1, "ts": -5, "unit": "C"}', "ts"),
    ('{"value": 1, "ts": 1700000000}', "unit"),
    ('{"value": 1, "ts": 1700000000, "unit": "C", "extra": 1}', "extra"),
    ("[]", "empty"),
    ("[1, 2]", "expected a JSON object"),
    ('"just a string"', "expected a JSON object"),
    (b"\xff\xfe{}", "UTF-8"),
])
async def test_bad_bodies_get_422_with_what_is_wrong(harness: Harness, body: str | bytes, words: str) -> None:
    status, answer = await post(harness, body)
    assert status == 422
    assert words in json.dumps(answer)
    assert harness.publisher.sent == []


async def test_one_bad_reading_refuses_the_whole_batch(harness: Harness) -> None:
    batch = [{"value": 1, "ts": 1700000000, "unit": "C"}, {"value": None, "ts": 1700000000, "unit": "C"}]
    status, answer = await post(harness, json.dumps(batch))
    assert status == 422 and answer["problems"][0]["index"] == 1
    assert "1 of 2 readings refused; nothing was published" in answer["error"]
    assert harness.publisher.sent == []


@pytest.mark.parametrize("device", ["a/b", "+", "#", "$SYS", "x" * 200, "bad\x00name"])
async def test_device_names_that_would_break_topics_are_refused(harness: Harness, device: str) -> None:
    body = json.dumps({"device": device, "sensor": "s", "value": 1, "ts": 1700000000, "unit": "C"})
    status, answer = await post(harness, body, url="/api/v1/readings")
    assert status == 422 and "device" in answer["problems"][0]["error"]
    assert harness.publisher.sent == []


async def test_missing_device_is_explained(harness: Harness) -> None:
    status, answer = await post(harness, '{"value": 1, "ts": 1700000000, "unit": "C"}', url="/api/v1/readings")
    assert status == 422 and "?device=" in answer["problems"][0]["error"]


async def test_oversize_bodies_get_413(harness: Harness) -> None:
    big = json.dumps([{"value": 1, "ts": 1700000000, "unit": "C"}] * 60_000)
    assert len(big) > 1_048_576
    status, answer = await post(harness, big)
    assert status == 413 and "larger than 1048576 bytes" in answer["error"]

    async def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(40):
            yield b" " * 65536

    r = await harness.client.post(URL, content=chunks(), headers=AUTH)
    assert r.status_code == 413
    assert harness.publisher.sent == []


async def test_too_many_readings_get_413(harness: Harness) -> None:
    status, answer = await post(harness, json.dumps([{"value": 1, "ts": 1700000000, "unit": "C"}] * 10_001))
    assert status == 413 and "at most 10000" in answer["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope-nope-nope-nope"},
                                     {"Authorization": f"Bearer {VIEWER_TOKEN}"}])
async def test_ingest_needs_an_ingest_token(harness: Harness, headers: dict[str, str]) -> None:
    r = await harness.client.post(URL, content=b'{"value": 1, "ts": 1700000000, "unit": "C"}',
                                  headers={"Authorization": "", **headers})
    assert r.status_code in (401, 403)
    assert harness.publisher.sent == []


def signed(body: bytes, path: str = URL, ts: int | None = None, secret: str = HMAC_SECRET) -> dict[str, str]:
    ts = int(NOW) if ts is None else ts
    return {"X-Vigil-Key": "k1", "X-Vigil-Timestamp": str(ts),
            "X-Vigil-Signature": sign_request(secret, ts, path, body)}


async def test_signed_requests_are_accepted_once(harness: Harness) -> None:
    body = b'{"value": 3, "ts": 1700000000, "unit": "C"}'
    r = await harness.client.post(URL, content=body, headers=signed(body))
    assert r.status_code == 202 and r.json()["by"] == "k1"
    r = await harness.client.post(URL, content=body, headers=signed(body))
    assert r.status_code == 401 and "replay" in r.json()["error"]
    assert len(harness.publisher.sent) == 1


@pytest.mark.parametrize(("change", "words"), [
    ("body", "bad signature"), ("path", "bad signature"), ("secret", "bad signature"),
    ("old", "too far"), ("future", "too far"), ("key", "unknown signing key"), ("ts", "whole epoch seconds"),
])
async def test_bad_signatures_get_401(harness: Harness, change: str, words: str) -> None:
    body = b'{"value": 3, "ts": 1700000000, "unit": "C"}'
    headers = signed(body)
    url = URL
    if change == "body":
        body = body.replace(b"3", b"4")
    elif change == "path":
        url = URL.replace("freezer", "boiler")
    elif change == "secret":
        headers = signed(body, secret="another-secret-0123456")
    elif change in ("old", "future"):
        headers = signed(body, ts=int(NOW) + (-301 if change == "old" else 301))
    elif change == "key":
        headers["X-Vigil-Key"] = "k9"
    elif change == "ts":
        headers["X-Vigil-Timestamp"] = "soon"
    r = await harness.client.post(url, content=body, headers=headers)
    assert r.status_code == 401 and words in r.json()["error"]
    assert harness.publisher.sent == []


async def test_broker_down_gets_503_and_says_so(harness: Harness) -> None:
    harness.publisher.down = True
    status, answer = await post(harness, '{"value": 1, "ts": 1700000000, "unit": "C"}')
    assert status == 503 and "broker" in answer["error"]


async def test_unknown_format_is_a_clear_422(harness: Harness) -> None:
    status, answer = await post(harness, "21.5", url=URL + "&format=nosuchformat&topic=x/y")
    assert status == 422 and "nosuchformat" in answer["error"]
    assert harness.publisher.sent == []


async def test_counted_in_metrics(harness: Harness) -> None:
    await post(harness, '{"value": 1, "ts": 1700000000, "unit": "C"}')
    r = await harness.client.get("/api/v1/metrics", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
    assert 'vigil_dashboard_events_total{event="ingested"} 1.0' in r.text.splitlines()



async def test_bridge_formats_go_through_the_bridge_pipeline(harness: Harness) -> None:
    payload = '{"Time":"2023-11-14T22:13:20","DS18B20":{"Temperature":49.7},"TempUnit":"C"}'
    status, body = await post(harness, payload, url="/api/v1/readings?format=tasmota&topic=tele/kitchen/SENSOR")
    assert status == 202, body
    [(topic, data, qos, _)] = harness.publisher.sent
    reading = json.loads(data)
    assert topic.startswith("vigil/readings/kitchen/") and qos == 1
    assert reading["value"] == 49.7 and reading["metric"] == "temperature"


async def test_a_bad_payload_in_a_bridge_format_is_a_422(harness: Harness) -> None:
    status, body = await post(harness, "{broken", url="/api/v1/readings?format=tasmota&topic=tele/kitchen/SENSOR")
    assert status == 422 and body["problems"]
    status, body = await post(harness, "21.5", url="/api/v1/readings?format=tasmota")
    assert status == 422 and "topic=" in body["error"]
    assert harness.publisher.sent == []


@pytest.mark.parametrize(("reading", "words"), [
    ({"value": 1, "ts": NOW, "unit": "furlong"}, "does not convert"),
    ({"value": 1, "ts": NOW - 400 * 86400, "unit": "°C"}, "ts_past"),
])
async def test_what_the_bridge_would_dead_letter_is_a_422(harness: Harness, reading: dict, words: str) -> None:  # type: ignore[type-arg]
    status, answer = await post(harness, json.dumps(reading))
    assert status == 422 and words in answer["problems"][0]["error"]
    assert harness.publisher.sent == []
