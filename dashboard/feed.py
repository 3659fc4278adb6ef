"""The dashboard's one MQTT connection: follows the bus into :class:`LiveState` and publishes actions.

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

from vigil.config import MqttSettings
from vigil.urls import BrokerUrl

from .live import LiveState

__all__ = ["BrokerUnavailable", "LiveFeed", "Publisher"]

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """A publish could not be confirmed by the broker; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the MQTT broker is not available: {reason}")


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and return once the broker acknowledged (QoS 1); BrokerUnavailable otherwise."""


class LiveFeed:
    """Keeps one aiomqtt connection up (reconnecting with jittered backoff) and feeds ``state``."""

    def __init__(self, mqtt: MqttSettings, state: LiveState, client_id: str,
                 broker: Optional[BrokerUrl] = None, publish_timeout: float = 10.0) -> None:
        self._mqtt = mqtt
        self._broker = broker or mqtt.broker()
        self._state = state
        self._client_id = client_id
        self._client: Optional[aiomqtt.Client] = None
        self._timeout = publish_timeout
        self.connected = asyncio.Event()

    def _make_client(self) -> aiomqtt.Client:
        b = self._broker
        tls = None
        if b.tls:
            tls = aiomqtt.TLSParameters(ca_certs=self._mqtt.ca_file, certfile=self._mqtt.cert_file,
                                        keyfile=self._mqtt.key_file)
        version = aiomqtt.ProtocolVersion.V5 if self._mqtt.protocol == "5" else aiomqtt.ProtocolVersion.V311
        return aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password,
            identifier=f"{self._client_id}-{random.randrange(16**6):06x}",
            protocol=version, keepalive=self._mqtt.keepalive, tls_params=tls,
            tls_insecure=self._mqtt.tls_insecure if b.tls else None, timeout=self._timeout,
        )

    async def run(self) -> None:
        """Follow the bus until cancelled."""
        t = self._state.topics
        attempt = 0
        while True:
            try:
                async with self._make_client() as client:
                    for flt in (t.all_events, t.all_status, t.all_alerts, t.all_acks, t.all_silences):
                        await client.subscribe(flt, qos=1)
                    self._client = client
                    self.connected.set()
                    self._state.set_connected(True)
                    attempt = 0
                    log.info("dashboard connected to %s", self._broker)
                    async for message in client.messages:
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                        self._state.handle(message.topic.value, data, time.time())
            except aiomqtt.MqttError as exc:
                log.warning("dashboard lost the broker %s: %s", self._broker, exc)
            finally:
                self._client = None
                self.connected.clear()
                self._state.set_connected(False)
            attempt += 1
            await asyncio.sleep(random.uniform(0, min(30.0, 1.5 ** min(10, attempt))))

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        client = self._client
        if client is None:
            raise BrokerUnavailable("not connected")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=self._timeout)
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(str(exc)) from exc
