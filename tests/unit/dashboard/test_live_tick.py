"""Watching is cheap: latest values coalesced per tick, encoded once for every browser; other changes at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dashboard.live import LiveState, Subscription
from tests.support.dashboard_app import NOW
from vigil.core.event import Event
from vigil.core.topics import Topics

TOPIC = "vigil/events/freezer/temperature"


def event(value: float, ts: float, sensor: str = "t0") -> bytes:
    return Event("freezer", sensor, "temperature", value, ts, "°C").to_json()


def alert(state: str, at: float = NOW) -> bytes:
    return json.dumps({"rule": "hot", "series": "freezer/t0/temperature", "state": state, "at": at,
                       "since": at}).encode()


def messages(sub: Subscription) -> list[tuple[str, Any]]:
    """What a browser reads from its queue, as (event name, data)."""
    out = []
    while not sub.queue.empty():
        chunk = sub.queue.get_nowait()
        assert chunk is not None
        for text in chunk.decode().split("\n\n")[:-1]:
            head, data = text.split("\ndata: ", 1)
            out.append((head.removeprefix("event: "), json.loads(data)))
    return out


def values(items: list[dict[str, Any]]) -> dict[str, float]:
    return {e["series"]: e["value"] for e in items}


def test_a_burst_reaches_a_browser_as_one_message_with_the_newest_value_of_each_series() -> None:
    live = LiveState(Topics())
    sub = live.subscribe()
    for i in range(100):
        live.handle(TOPIC, event(float(i), NOW + i, sensor=f"t{i % 3}"), NOW)
    assert sub.queue.empty()  # nothing goes out per reading
    live.flush()
    got = messages(sub)
    assert [name for name, _ in got] == ["events"]
    assert values(got[0][1]) == {"freezer/t0/temperature": 99.0, "freezer/t1/temperature": 97.0,
                                 "freezer/t2/temperature": 98.0}
    live.flush()  # nothing changed since: nothing sent
    assert sub.queue.empty()


def test_every_browser_gets_the_same_bytes_encoded_once() -> None:
    live = LiveState(Topics())
    subs = [live.subscribe() for _ in range(3)]
    live.handle(TOPIC, event(1.0, NOW), NOW)
    live.flush()
    live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    first, second = (sub.queue.get_nowait() for sub in subs[:1] for _ in range(2))
    for sub in subs[1:]:
        assert sub.queue.get_nowait() is first and sub.queue.get_nowait() is second


def test_an_alert_goes_out_at_once_after_the_values_it_may_follow_from() -> None:
    live = LiveState(Topics())
    sub = live.subscribe()
    live.handle(TOPIC, event(9.0, NOW), NOW)
    live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("firing"), NOW)
    live.handle("vigil/status/freezer", b"offline", NOW)
    got = messages(sub)  # no flush: these did not wait for the tick
    assert [name for name, _ in got] == ["events", "alert", "status"]
    assert values(got[0][1]) == {"freezer/t0/temperature": 9.0}
    assert got[1][1]["state"] == "firing" and got[2][1]["state"] == "offline"
    live.handle(TOPIC, event(10.0, NOW + 1), NOW)
    live.handle("vigil/alerts/hot/freezer/t0/temperature", alert("resolved", NOW + 1), NOW)
    live.handle("vigil/ack/hot/freezer/t0/temperature", b'{"by": "ann"}', NOW)
    live.handle("vigil/silences/s1", b'{"matchers": {"device": "freezer"}, "until": 1e10}', NOW)
    live.handle("vigil/silences/s1", b"", NOW)
    assert [name for name, _ in messages(sub)] == ["events", "alert", "alert", "silence", "silence_cleared"]


def test_with_no_browser_nothing_is_kept_for_one() -> None:
    live = LiveState(Topics())
    for i in range(10):
        live.handle(TOPIC, event(float(i), NOW + i), NOW)
    sub = live.subscribe()
    live.flush()
    assert sub.queue.empty() and live.latest["freezer/t0/temperature"]["value"] == 9.0
    live.unsubscribe(sub)
    live.handle(TOPIC, event(11.0, NOW + 11), NOW)
    late = live.subscribe()
    live.flush()
    assert late.queue.empty()  # its snapshot has that value; nothing was held for nobody


def test_an_event_is_decoded_once_and_refused_when_a_shown_field_is_not_finite() -> None:
    live = LiveState(Topics())
    good = json.loads(event(1.0, NOW))
    for bad in ({**good, "received": 1e999}, {**good, "received": "nan"}, {**good, "seq": 10**30},
                {**good, "seq": 1e999}, {**good, "value": "inf"}):
        live.handle(TOPIC, json.dumps(bad).encode(), NOW)
    assert live.counters["bad_messages"] == 5 and live.latest == {}
    live.handle(TOPIC, json.dumps({**good, "seq": 7}).encode(), NOW)
    assert live.latest["freezer/t0/temperature"]["seq"] == 7


async def test_the_ticker_sends_the_changes_while_someone_watches_and_stops_after() -> None:
    live = LiveState(Topics(), tick=0.05)
    sub = live.subscribe()
    live.handle(TOPIC, event(1.0, NOW), NOW)
    live.handle(TOPIC, event(2.0, NOW + 1), NOW)
    chunk = await asyncio.wait_for(sub.queue.get(), 5)
    assert chunk is not None and chunk.startswith(b"event: events\n")
    assert values(json.loads(chunk.split(b"\ndata: ", 1)[1])) == {"freezer/t0/temperature": 2.0}
    live.unsubscribe(sub)
    ticker = live._ticker
    assert ticker is not None
    await asyncio.wait_for(ticker, 5)  # no one left: the ticker ends
    live.close_all()
