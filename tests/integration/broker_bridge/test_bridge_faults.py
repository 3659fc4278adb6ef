"""The bridge under faults: SIGKILL mid-stream, influxd down, broker restart, shared group, hostile names."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.bridge import (
    BridgeProcess,
    influx_count,
    make_config,
    publish_many,
    reading,
    running_bridge,
    wait_for,
)
from tests.support.services import Influxd, Mosquitto, wait_until
from vigil.core.event import SeriesKey
from vigil.core.stores import open_store


def readings(n: int, devices: int, t0: float) -> list[tuple[str, bytes]]:
    return [(f"vigil/readings/dev-{i % devices}/t0", reading(float(i % 40), t0 + i / 1000, seq=i)) for i in range(n)]


def test_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path) -> None:
    bridge = BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / "bridge")
    bridge.start()
    t0 = time.time() - 3600
    batch = readings(20_000, 20, t0)
    publisher = threading.Thread(target=publish_many, args=(mosquitto, batch))
    publisher.start()
    try:
        assert wait_until(lambda: (bridge.metric("vigil_bridge_stored_total") or 0) > 3000, 60)
        bridge.kill()
        killed_at = influx_count(influxd, influx_db)
        assert 0 < killed_at < 20_000
    finally:
        bridge.stop()  # only if the assertions above failed before the kill
        publisher.join(120)
    bridge.start()
    try:
        assert wait_until(lambda: influx_count(influxd, influx_db) >= 20_000, 120), influx_count(influxd, influx_db)
        time.sleep(0.5)
        assert influx_count(influxd, influx_db) == 20_000
        # each series holds exactly its 1,000 distinct readings
        res = influxd.query('SELECT count("value") FROM "temperature" GROUP BY "device"', db=influx_db)
        assert sorted(int(s["values"][0][1]) for s in res["results"][0]["series"]) == [1000] * 20
    finally:
        bridge.stop()


async def test_influxd_down_for_30s_under_load_spools_then_everything_arrives(
        mosquitto: Mosquitto, private_influxd: Influxd, tmp_path: Path) -> None:
    db = private_influxd.create_database("vigil")
    config = make_config(mosquitto, private_influxd.url(db), tmp_path)
    t0 = time.time() - 600
    sent = 0
    with open_store(private_influxd.url(db)) as store:
        async with running_bridge(config, store) as bridge:
            start = time.monotonic()
            stopped = restarted = False
            while time.monotonic() - start < 38:
                elapsed = time.monotonic() - start
                if elapsed > 3 and not stopped:
                    await asyncio.to_thread(private_influxd.stop)
                    stopped = True
                if elapsed > 33 and not restarted:
                    await asyncio.to_thread(private_influxd.start)
                    restarted = True
                await asyncio.to_thread(publish_many, mosquitto, readings(100, 5, t0 + sent / 1000)[:100])
                sent += 100
                await asyncio.sleep(0.25)
            assert bridge.metrics.counts["spooled"] > 0
            assert await wait_for(lambda: bridge.spool.events == 0 and not bridge.writer.spooling, 60)
        series = [SeriesKey("temperature", f"dev-{d}", "t0") for d in range(5)]
        total = sum(len(store.query(s, t0 - 1, t0 + 100)) for s in series)
    assert total == sent


async def test_broker_restart_reconnects_and_retained_replays_store_nothing_twice(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path) -> None:
    config = make_config(mosquitto, influxd.url(influx_db), tmp_path, sources=[
        {"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/{device}"}])
    with open_store(influxd.url(influx_db)) as store:
        async with running_bridge(config, store) as bridge:
            # zigbee2mqtt publishes device state retained, without a timestamp
            await asyncio.to_thread(publish_many, mosquitto, [
                ("zigbee2mqtt/greenhouse", json.dumps({"temperature": 27.34, "humidity": 44.72}).encode())],
                True)
            assert await wait_for(lambda: bridge.metrics.counts["republished"] >= 2)
            await asyncio.to_thread(mosquitto.restart)
            assert await wait_for(lambda: bridge.connected.is_set() and bridge.metrics.counts["received"] >= 2, 30)
            assert await wait_for(lambda: bridge.metrics.counts["duplicates"] >= 2, 10)
            await asyncio.to_thread(publish_many, mosquitto, [
                ("vigil/readings/after/t0", reading(5.0, time.time()))])
            assert await wait_for(lambda: bridge.metrics.counts["republished"] >= 3, 10)
        assert influx_count(influxd, influx_db, "temperature") == 2
        assert influx_count(influxd, influx_db, "humidity") == 1


def test_two_bridges_in_a_shared_group_store_every_reading_once(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path) -> None:
    bridges = [BridgeProcess(mosquitto, influxd.url(influx_db), tmp_path / f"b{i}", client_id=f"bridge-{i}",
                             extra=["--shared-group", "bridges"]) for i in range(2)]
    for b in bridges:
        b.start()
    try:
        publish_many(mosquitto, readings(4000, 40, time.time() - 100))
        assert wait_until(lambda: influx_count(influxd, influx_db) >= 4000, 60)
        time.sleep(0.5)
        assert influx_count(influxd, influx_db) == 4000
        shares = [b.metric("vigil_bridge_received_total") or 0 for b in bridges]
        assert sum(shares) == 4000 and min(shares) > 0, shares
    finally:
        for b in bridges:
            b.stop()


async def test_hostile_device_names_are_stored_intact_or_refused(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, recorder_factory: Any) -> None:
    config = make_config(mosquitto, influxd.url(influx_db), tmp_path)
    dead = recorder_factory("vigil/deadletter/#")
    intact = ["a b", "a,b", "a=b", '"q"', "it's", "Ω-freezer", "back\\slash", "x=1 y=2,z", "<b>bold</b>"[:8]]
    # Names with control characters never get this far: Mosquitto drops such a PUBLISH as malformed.
    refused = ["n" * 10_000, "$weird"]
    now = time.time()
    with open_store(influxd.url(influx_db)) as store:
        async with running_bridge(config, store) as bridge:
            await asyncio.to_thread(publish_many, mosquitto, [
                (f"vigil/readings/{name}/t0", reading(1.0, now)) for name in intact + refused])
            assert await wait_for(lambda: bridge.metrics.counts["received"] >= len(intact) + len(refused), 15)
            assert await wait_for(lambda: len(dead.messages) >= len(refused), 5)
            assert await wait_for(lambda: bridge.metrics.counts["republished"] >= len(intact), 5)
        assert sorted(e.device for e in store.latest()) == sorted(intact)
        for name in intact:
            assert [p.value for p in store.query(SeriesKey("temperature", name, "t0"), now - 1, now + 1)] == [1.0]
    letters = [json.loads(p) for _, p in dead.messages]
    assert len(letters) == len(refused)
    assert all(letter["reason"] in ("topic", "name") for letter in letters), letters


def test_a_clean_stop_says_offline_stopped_on_the_health_topic(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # A clean DISCONNECT sends no last will: without its own word the bridge stayed "ok" on its retained health
    # after `systemctl stop`, and `vigil status` said so until the document grew old.
    from tests.support.edge import retained

    bridge = BridgeProcess(mosquitto, f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "bridge", client_id="b-stop")
    bridge.start()
    topic = "vigil/health/bridge/b-stop"

    def health() -> dict[str, Any]:
        message = retained(mosquitto, topic, timeout=1)
        return {} if message is None else dict(message.json())

    assert wait_until(lambda: health().get("state") == "ok", 20)
    bridge.stop()
    assert "vigil: stopped" in bridge.output(), bridge.output()[-2000:]
    doc = health()
    assert doc.get("state") == "offline" and doc.get("problems") == ["stopped"], doc
