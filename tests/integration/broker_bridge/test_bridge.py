"""The bridge against a private Mosquitto and influxd: stored once, republished, refusals dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.support.bridge import make_config, publish_many, reading, running_bridge, wait_for
from tests.support.services import Influxd, Mosquitto
from vigil.core.event import SeriesKey
from vigil.core.stores import open_store


async def test_readings_are_stored_republished_and_refusals_dead_lettered(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, recorder_factory: Any) -> None:
    config = make_config(mosquitto, influxd.url(influx_db), tmp_path, sources=[
        {"name": "tasmota", "format": "tasmota", "topic": "tele/{device}/SENSOR"}])
    events = recorder_factory("vigil/events/#")
    dead = recorder_factory("vigil/deadletter/#")
    now = time.time()
    with open_store(influxd.url(influx_db)) as store:
        async with running_bridge(config, store):
            await asyncio.to_thread(publish_many, mosquitto, [
                ("vigil/readings/freezer-1/t0", reading(-18.5, now - 2, seq=1)),
                ("vigil/readings/freezer-1/t0", reading(-18.0, now - 1, seq=2)),
                ("vigil/readings/freezer-1/t0", b'{"value": "warm", "ts": 1, "unit": "C"}'),
                ("tele/kitchen/SENSOR", json.dumps({"Time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                                                     "DS18B20": {"Temperature": 39.2}, "TempUnit": "F"}).encode()),
                ("vigil/readings/freezer-1/t0", reading(-18.0, now - 1, seq=2)),  # a redelivery
            ])
            assert await wait_for(lambda: len(events.messages) >= 3 and len(dead.messages) >= 1)
            await asyncio.sleep(0.3)
        points = store.query(SeriesKey("temperature", "freezer-1", "t0"), now - 10, now + 10)
        assert [p.value for p in points] == [-18.5, -18.0]
        kitchen = store.latest(device="kitchen")
        assert [(e.sensor, round(e.value, 2)) for e in kitchen] == [("DS18B20", 4.0)]
    got = events.json()
    assert [(t, e["device"], round(e["value"], 6)) for t, e in got] == [
        ("vigil/events/freezer-1/temperature", "freezer-1", -18.5),
        ("vigil/events/freezer-1/temperature", "freezer-1", -18.0),
        ("vigil/events/kitchen/temperature", "kitchen", 4.0),
    ]
    (topic, letter), = dead.json()
    assert topic == "vigil/deadletter/vigil"
    assert letter["topic"] == "vigil/readings/freezer-1/t0"
    assert letter["reason"] == "value" and "warm" in letter["detail"], letter
    assert letter["payload"] == '{"value": "warm", "ts": 1, "unit": "C"}'


async def test_malformed_interleaved_with_good_all_good_stored_all_bad_dead_lettered(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, recorder_factory: Any) -> None:
    config = make_config(mosquitto, influxd.url(influx_db), tmp_path)
    dead = recorder_factory("vigil/deadletter/#")
    now = time.time() - 2000
    bad_payloads = [b"", b"{", b"NaN", b'{"value": 1e999, "ts": 1, "unit": "C"}', b"\xff" * 10,
                    b'{"value": 1, "ts": 1, "unit": "C", "extra": 1}', b"x" * 70_000, b"[]"]
    messages = []
    for i in range(1000):
        messages.append((f"vigil/readings/dev-{i % 10}/t0", reading(float(i % 50), now + i, seq=i)))
        messages.append((f"vigil/readings/dev-{i % 10}/t0", bad_payloads[i % len(bad_payloads)]))
    with open_store(influxd.url(influx_db)) as store:
        async with running_bridge(config, store) as bridge:
            await asyncio.to_thread(publish_many, mosquitto, messages)
            done = await wait_for(lambda: bridge.metrics.counts["republished"] >= 1000 and len(dead.messages) >= 1000,
                                  60)
            assert done, (bridge.metrics.summary(), sorted(bridge.metrics.refused.items()))
        total = sum(len(store.query(SeriesKey("temperature", f"dev-{d}", "t0"), now - 1, now + 1001))
                    for d in range(10))
    assert total == 1000
    reasons = {json.loads(p)["reason"] for _, p in dead.messages}
    assert len(dead.messages) == 1000
    assert reasons >= {"json", "schema", "too_large"}


async def test_a_broker_that_refuses_the_events_is_said_and_counted_and_readings_still_stored(
        tmp_path: Path, influxd: Influxd, influx_db: str, caplog: Any) -> None:
    # A broker whose ACL lets anonymous clients read readings but not write events.
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite vigil/readings/#\ntopic readwrite vigil/deadletter/#\n")
    broker = Mosquitto(tmp_path / "mq", extra_config=f"acl_file {acl}\n")
    broker.start()
    try:
        config = make_config(broker, influxd.url(influx_db), tmp_path)
        now = time.time()
        with open_store(influxd.url(influx_db)) as store:
            async with running_bridge(config, store) as bridge:
                await asyncio.to_thread(publish_many, broker, [
                    ("vigil/readings/freezer-1/t0", reading(-18.0 + i, now - 5 + i, seq=i)) for i in range(3)])
                assert await wait_for(lambda: bridge.metrics.counts["republish_refused"] >= 3, 15)
                assert bridge.metrics.counts["republished"] == 0
            points = store.query(SeriesKey("temperature", "freezer-1", "t0"), now - 10, now + 10)
        assert [p.value for p in points] == [-18.0, -17.0, -16.0]
        said = [r.getMessage() for r in caplog.records if "refused the bridge's publish" in r.getMessage()]
        assert len(said) == 1 and "vigil/events/freezer-1/temperature" in said[0] and "ACL" in said[0]
    finally:
        broker.stop()
