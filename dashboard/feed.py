"""The dashboard's one MQTT connection: follows the bus into :class:`LiveState` and publishes actions.

The connection carries the dashboard's last will: ``{"state":"offline"}`` retained on its health
topic (``<root>/health/dashboard/<client id>``, where dashboard/app.py publishes its health), so a
dashboard that dies is seen offline at once by ``vigil status`` and the watchdog, not only as stale
a few minutes later; on a clean stop it says so itself.

Exceptions::

    BrokerUnavailable     not connected to the broker now, or it did not acknowledge in time
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Optional, Protocol

import aiomqtt

from vigil.core.backoff import Rotation
from vigil.core.errors import VigilError
from vigil.core.health import offline_payload
from vigil.core.mqtt import build_client, say_stopped
from vigil.core.settings import MqttSettings
from vigil.core.urls import BrokerUrl

from .live import LiveState

__all__ = ["BrokerUnavailable", "LiveFeed", "Publisher"]

log = logging.getLogger(__name__)


class BrokerUnavailable(VigilError):
    """A publish could not be confirmed by the broker; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the MQTT broker is not available: {reason}")


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and return once the broker acknowledged (QoS 1); BrokerUnavailable otherwise."""


class LiveFeed:
    """Keeps one aiomqtt connection up (reconnecting with jittered backoff) and feeds ``state``."""

    def __init__(self, mqtt: MqttSettings, state: LiveState, client_id: str, publish_timeout: float = 10.0) -> None:
        self._mqtt = mqtt
        self._brokers = mqtt.brokers()
        self._rotation = Rotation(len(self._brokers), 30.0)  # several brokers: the next at once on a loss
        self._state = state
        self._client_id = client_id
        self._client: Optional[aiomqtt.Client] = None
        self._timeout = publish_timeout
        self.connected = asyncio.Event()
        self.restarts = 0
        self.health_topic = state.topics.health("dashboard", client_id)

    def _make_client(self) -> aiomqtt.Client:
        # A fresh id each time: two dashboards (or a restart racing the old session) never kick each other.
        will = aiomqtt.Will(self.health_topic, offline_payload("dashboard", self._client_id), qos=1, retain=True)
        return build_client(self._mqtt, f"{self._client_id}-{random.randrange(16**6):06x}", will=will,
                            broker=self._broker)

    @property
    def _broker(self) -> BrokerUrl:
        return self._brokers[self._rotation.index]

    async def run(self) -> None:
        """Follow the bus until cancelled; whatever ends a connection, the next one is tried after a backoff."""
        while True:
            try:
                await self._follow()
            except aiomqtt.MqttError as exc:
                log.warning("dashboard lost the broker %s: %s", self._broker, exc)
            except Exception:  # a defect must not leave the dashboard blind until a restart
                self.restarts += 1
                log.exception("the dashboard's MQTT feed failed; reconnecting")
            finally:
                self._client = None
                self.connected.clear()
                self._state.set_connected(False)
            await asyncio.sleep(self._rotation.failed())

    async def _follow(self) -> None:
        t = self._state.topics
        async with self._make_client() as client:
            for flt in (t.all_events, t.all_status, t.all_alerts, t.all_acks, t.all_silences):
                await client.subscribe(flt, qos=1)
            self._client = client
            self._rotation.connected()
            self.connected.set()
            self._state.set_connected(True)
            log.info("dashboard connected to %s", self._broker)
            try:
                async for message in client.messages:
                    topic = message.topic.value
                    try:
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                        self._state.handle(topic, data, time.time())
                    except Exception as exc:  # handle() refuses bad messages itself; this is the last guard
                        self._state.refused(topic, exc)
            except asyncio.CancelledError:
                await say_stopped(client, self.health_topic, "dashboard", self._client_id)
                raise

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        client = self._client
        if client is None:
            raise BrokerUnavailable("not connected")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=self._timeout)
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(str(exc)) from exc
