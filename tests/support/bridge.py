"""A bridge running in-process or as a real `vigil bridge` process, and MQTT clients that feed and watch it."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker_bridge.service import Bridge
from tests.support.services import ChildProcess, Influxd, Mosquitto, free_port, wait_until
from vigil.app.config import VigilConfig, load_config
from vigil.core.stores import Store

VIGIL = str(Path(sys.executable).with_name("vigil"))


def make_config(broker: Mosquitto, store_url: str, data_dir: Path, **bridge: Any) -> VigilConfig:
    return load_config(None, overrides={
        "mqtt.url": (broker.url, "--broker"),
        "store.url": (store_url, "--store"),
        "data_dir": (str(data_dir), "--data-dir"),
        **{f"bridge.{k}": (v, f"--{k}") for k, v in bridge.items()},
    })


@asynccontextmanager
async def running_bridge(config: VigilConfig, store: Store) -> AsyncIterator[Bridge]:
    bridge = Bridge(config.bridge, config.mqtt, store, config.data_dir)
    ready = asyncio.Event()
    task = asyncio.create_task(bridge.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield bridge
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for(check: Any, timeout: float = 10.0) -> bool:
    """Poll ``check`` without blocking the event loop; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return bool(check())


class Recorder:
    """A paho subscriber recording (topic, payload) of everything under a filter."""

    def __init__(self, broker: Mosquitto, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{free_port()}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, m.payload))

    def json(self) -> list[tuple[str, Any]]:
        with self._lock:
            return [(t, json.loads(p)) for t, p in self.messages]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish_many(broker: Mosquitto, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    """Publish at QoS 1 and wait until the broker acknowledged every message."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{free_port()}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1, retain=retain) for t, p in messages]
    for info in infos:
        info.wait_for_publish(30)
    c.loop_stop()
    c.disconnect()
    unacked = [m for m, info in zip(messages, infos) if not info.is_published()]
    assert not unacked, f"the broker acknowledged {len(messages) - len(unacked)} of {len(messages)}: {unacked[:3]!r}"


def reading(value: float, ts: float, seq: Optional[int] = None, unit: str = "°C") -> bytes:
    d: dict[str, Any] = {"value": value, "ts": ts, "unit": unit}
    if seq is not None:
        d["seq"] = seq
    return json.dumps(d).encode()


class BridgeProcess(ChildProcess):
    """`vigil bridge` as a real process, with its metrics port, for kill and restart tests."""

    def __init__(self, broker: Mosquitto, store_url: str, workdir: Path, client_id: str = "vigil-bridge",
                 extra: Optional[list[str]] = None) -> None:
        self.metrics_port = free_port()
        argv = [VIGIL, "bridge", "--broker", broker.url, "--store", store_url, "--data-dir", str(workdir),
                "--client-id", client_id, *(extra or []), "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(argv, workdir / f"{client_id}.log")

    def start(self) -> None:
        super().start()
        assert wait_until(lambda: self.metric("vigil_bridge_received_total") is not None, 20), self.log.read_text()
        time.sleep(0.3)  # subscribed

    def metric(self, name: str) -> Optional[float]:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[1])
        except OSError:
            return None
        return None


def influx_count(influxd: Influxd, db: str, measurement: str = "temperature") -> int:
    res = influxd.query(f'SELECT count("value") FROM "{measurement}"', db=db)
    series = res["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


__all__ = ["BridgeProcess", "Recorder", "influx_count", "make_config", "publish_many", "reading", "running_bridge",
           "wait_for"]
