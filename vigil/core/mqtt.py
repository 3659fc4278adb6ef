"""aiomqtt clients for the server parts, built from the ``mqtt:`` settings.

- ``persistent=True`` gives a session the broker keeps while the client is away (MQTT 5:
  clean start off and a session expiry; 3.1.1: clean session off), so QoS 1 messages wait.
- Manual acknowledgement: aiomqtt 2.x has no public switch for paho 2's ``manual_ack`` yet
  (aiomqtt issue #345); :func:`enable_manual_ack` and :func:`ack` are the one place where we
  reach the paho client under it.
- Cancellation: aiomqtt awaits every answer (CONNACK, SUBACK, a PUBLISH's PUBACK) in its
  ``Client._wait_for`` with ``asyncio.wait_for``, which on Python 3.11 returns the answer and drops a
  cancel that comes in the same turn of the event loop (3.12 rewrote it). The task went on as if
  nobody had asked it to stop, and whoever cancelled it waited for ever: a shared state's partition
  whose state publisher swallowed one never stopped, its engine never started again, its alerts
  untold (issue 18). :class:`Client` awaits them with ``asyncio.timeout`` instead; checked against
  the installed aiomqtt by tests/unit/vigil/core/test_mqtt_cancel.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Optional, TypeVar

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vigil.core.backoff import backoff_delay  # re-exported: the clients' reconnects wait by the one formula

# re-exported: the bridge (gmqtt) takes them from vigil.core.settings, without aiomqtt and paho
from vigil.core.health import offline_payload
from vigil.core.settings import SESSION_EXPIRY, MqttSettings, ssl_context
from vigil.core.urls import BrokerUrl

__all__ = [
    "SESSION_EXPIRY",
    "ack",
    "backoff_delay",
    "build_client",
    "enable_manual_ack",
    "installation_client_id",
    "say_stopped",
    "ssl_context",
]

T = TypeVar("T")


class Client(aiomqtt.Client):
    """aiomqtt's client, its answers awaited with ``asyncio.timeout`` (a cancel is never lost: see above)."""

    async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            timeout = self.timeout
        try:
            async with asyncio.timeout(None if timeout == math.inf else timeout):
                return await fut
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None


async def say_stopped(client: aiomqtt.Client, topic: str, part: str, client_id: str) -> None:
    """A clean stop sends no last will: say offline ourselves on the health ``topic``, briefly (2 s at most;
    asyncio.timeout, not wait_for: see above)."""
    try:
        async with asyncio.timeout(2):
            await client.publish(topic, offline_payload(part, client_id, "stopped"), qos=1, retain=True)
    except (aiomqtt.MqttError, TimeoutError):
        pass


def build_client(
    settings: MqttSettings,
    client_id: str,
    *,
    persistent: bool = False,
    will: Optional[aiomqtt.Will] = None,
    receive_maximum: Optional[int] = None,
    max_inflight: int = 0,
    broker: Optional[BrokerUrl] = None,
) -> aiomqtt.Client:
    """An aiomqtt client for ``broker``, one of ``settings.brokers()`` (default: the first), not yet connected."""
    broker = broker or settings.broker()
    v5 = settings.protocol == "5"
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY
        if receive_maximum:
            properties.ReceiveMaximum = receive_maximum
    kwargs: dict[str, Any] = {}
    if v5:
        kwargs["clean_start"] = not persistent
    else:
        kwargs["clean_session"] = not persistent
    return Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        keepalive=settings.keepalive,
        properties=properties,
        tls_context=ssl_context(settings) if broker.tls else None,
        tls_insecure=settings.tls_insecure if broker.tls else None,
        # 0 = no limit in paho: with a limit, paho rescans every outgoing message on each PUBACK
        # (O(n²) per batch).
        max_inflight_messages=max_inflight,
        timeout=10,
        **kwargs,
    )


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """From now on, QoS 1 messages are acknowledged only by :func:`ack` (call before connecting)."""
    paho_client: paho.Client = client._client
    paho_client.manual_ack_set(True)


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Send the PUBACK for ``message`` (QoS 0 messages need none)."""
    if message.qos > 0:
        paho_client: paho.Client = client._client
        paho_client.ack(message.mid, message.qos)


def installation_client_id(part: str, data_dir: str | Path) -> str:
    """``vigil-<part>-<8 hex>``: stable for one installation (this host and the data directory's
    absolute path), different for a second one, so two of them on one broker never take each
    other's session."""
    where = f"{socket.gethostname()}\0{Path(data_dir).resolve()}"
    return f"vigil-{part}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
