"""The bridge's MQTT connection, on gmqtt: receive in batches, acknowledge late, publish in windows.

Why not aiomqtt (paho) here, as in the other server parts: the bridge handles every reading of
every device, and paho's per-packet work was most of its CPU (a profile of the bridge draining
a backlog: paho's read path, MQTT 5 ``Properties`` objects first). A bare gmqtt subscriber drains
the same backlog several times as fast as a bare paho one (``bench/bridge.py`` prints both; the
figures in docs/proof.md, The bridge alone). The rule engine, the dashboard and the edge stay on
aiomqtt / paho.

What the bridge needs and gmqtt does not offer as such, done here in one place:

- Acknowledge after durable: gmqtt either acknowledges on receipt or once ``on_message``
  returns (with no packet id given to it). :class:`Link` takes over the handler's QoS 1 step so
  that a message is kept with its packet id and acknowledged by :meth:`Link.ack`.
- Publishing many at QoS 1 and knowing when the broker has them, with the MQTT 5 reason code of
  each refusal (gmqtt leaves PUBACK reason codes unparsed), within the broker's receive maximum.
- Reading the packets of nearly every reading (PUBLISH of QoS 0/1 without properties) and the
  PUBACKs of its own publishes, and building those publishes, without gmqtt's per-packet work
  (docs/proof.md, Issue 18, The bridge); the rest still goes through gmqtt's handler.
- Backpressure: while more than ``inbox_bound`` messages wait, the socket is not read (Mosquitto
  2.0.11 exceeds the client's receive maximum once acknowledgements flow, so without this a
  backlog fills the bridge's memory).
- Reconnecting is the bridge's own (one log line per state change, jittered backoff, a fresh
  session view); gmqtt's automatic reconnect is switched off.

These reach under gmqtt's public surface (``_package_handler``, ``_connection``, ``id_generator``); the version
is pinned in pyproject.toml and tests/integration/broker_bridge exercises every one of them against a
real Mosquitto.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311

from vigil.core.errors import VigilError
from vigil.core.settings import SESSION_EXPIRY, MqttSettings, ssl_context
from vigil.core.urls import BrokerUrl

__all__ = ["Delivery", "Link", "LinkError"]

log = logging.getLogger(__name__)
# gmqtt logs every connection loss with a traceback; the bridge says it in one line of its own.
logging.getLogger("gmqtt").setLevel(logging.ERROR)

# MQTT 5 reason codes of a refused PUBACK or SUBACK (spec 3.4.2.1 / 3.9.3), by name as paho prints them.
REASONS = {
    0x80: "Unspecified error", 0x83: "Implementation specific error", 0x87: "Not authorized",
    0x8F: "Topic filter invalid", 0x90: "Topic name invalid", 0x91: "Packet identifier in use",
    0x97: "Quota exceeded", 0x99: "Payload format invalid", 0x9E: "Shared subscriptions not supported",
    0xA1: "Subscription identifiers not supported", 0xA2: "Wildcard subscriptions not supported",
}

# MQTT 5 reason codes of a DISCONNECT from the broker (spec 3.14.2.1), the ones worth explaining.
DISCONNECT_REASONS = {
    0x8B: "server shutting down", 0x8D: "keep alive timeout",
    0x8E: "session taken over: another client connected with the same client id (give each bridge its own "
          "--client-id)",
    0x87: "not authorized", 0x97: "quota exceeded", 0x98: "administrative action",
}


_PUBACK = struct.Struct("!BBH")
_H = struct.Struct("!H")


class LinkError(VigilError):
    """The connection failed or was lost; the caller reconnects with backoff."""


class _Refused(Exception):
    """A subscription the broker refused (SUBACK reason code 0x80 or above)."""


@dataclass(slots=True)
class Delivery:
    """One message from the broker, to be acknowledged with :meth:`Link.ack` once it is durable."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: Optional[int]


class _Client(gmqtt.Client):  # type: ignore[misc]
    async def reconnect(self, delay: bool = False) -> None:
        """gmqtt calls this on every connection loss; the bridge reconnects itself, with a new Link."""


class Link:
    """One connection of the bridge to the broker, from connect to loss or close."""

    def __init__(self, settings: MqttSettings, client_id: str, *, persistent: bool = True,
                 receive_maximum: int = 1000, inbox_bound: int = 2000, timeout: float = 10.0,
                 will: Optional[tuple[str, bytes]] = None, broker: Optional[BrokerUrl] = None) -> None:
        self.settings = settings
        self.broker = broker or settings.broker()  # one of settings.brokers(): the service rotates over them
        self.client_id = client_id
        self.timeout = timeout
        self.inbox_bound = inbox_bound
        self.v5 = settings.protocol == "5"
        self.lost = asyncio.Event()
        self.why_lost = ""
        self._inbox: deque[Delivery] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None  # next_batch waiting for a message or the loss
        self._loop = asyncio.get_running_loop()
        self._first = self._last = 0.0  # when the first message now in the inbox arrived, and the latest (loop time)
        self._gap = float("inf")  # from the message before the first to the first: small while readings stream in
        self._taken = 0  # messages in the batch taken last
        self._acks_due: list[bytes] = []  # PUBACKs to send with the next write (ack(later=True))
        self._paused = False
        self._expecting = False  # an answer of the broker is awaited: the socket must be read
        self._waiting: dict[int, str] = {}  # packet id -> topic of each publish not yet acknowledged
        self._refused: list[tuple[str, str]] = []
        self._acked = asyncio.Event()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        properties: dict[str, Any] = {}
        if self.v5:
            properties["receive_maximum"] = receive_maximum
            if persistent:
                properties["session_expiry_interval"] = SESSION_EXPIRY
        will_message = gmqtt.Message(will[0], will[1], qos=1, retain=True) if will else None  # the health topic's
        client = _Client(client_id, clean_session=not persistent, optimistic_acknowledgement=True,
                         will_message=will_message, **properties)
        self._client = client
        client.on_message = self._on_qos0
        client.on_disconnect = self._on_disconnect
        handler = client._package_handler
        # Instance attributes win over the handler's methods of the same name (it looks them up by name).
        handler._handle_qos_1_publish_packet = self._on_qos1
        self._publish, self._puback = handler._handle_publish_packet, handler._handle_puback_packet
        handler._handle_publish_packet = self._on_publish
        handler._handle_puback_packet = self._on_puback
        self._ids = handler.id_generator
        client.on_subscribe = self._on_suback

    # -- connecting -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect (TLS, credentials, MQTT 5 or 3.1.1); LinkError says why it could not."""
        broker = self.broker
        if broker.username:
            self._client.set_auth_credentials(broker.username, broker.password)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that comes with the answer
            # (vigil/core/mqtt.py says more), and a bridge stopped then would go on
            async with asyncio.timeout(self.timeout):
                await self._client.connect(
                    broker.host, broker.port, ssl=ssl_context(self.settings) if broker.tls else False,
                    keepalive=self.settings.keepalive, version=MQTTv50 if self.v5 else MQTTv311)
        except TimeoutError:
            await self.close()
            hint = " (a broker that does not speak MQTT 5 does so: try mqtt.protocol: \"3.1.1\")" if self.v5 else ""
            raise LinkError(f"no answer to CONNECT within {self.timeout:.0f}s{hint}") from None
        except gmqtt.mqtt.handler.MQTTConnectError as exc:
            await self.close()
            raise LinkError(f"the broker refused the connection: {exc.message}") from None
        except OSError as exc:  # refused, unreachable, TLS (ssl.SSLError is an OSError)
            raise LinkError(f"cannot connect: {exc.strerror or exc}") from None

    async def subscribe(self, filters: list[tuple[str, int]], *, refusable: bool = False) -> str:
        """Subscribe and wait for the broker's answer; LinkError names a refused filter, or with
        ``refusable`` the refusal is returned as a sentence (empty: all taken)."""
        self._expect()
        try:
            await self._subscribe(filters)
        except _Refused as exc:
            if refusable:
                return str(exc)
            raise LinkError(str(exc)) from None
        finally:
            self._expecting = False
        return ""

    async def _subscribe(self, filters: list[tuple[str, int]]) -> None:
        for topic_filter, qos in filters:
            loop = asyncio.get_running_loop()
            mid = self._client.subscribe(topic_filter, qos=qos)
            done = self._subacks[mid] = loop.create_future()
            try:
                async with asyncio.timeout(self.timeout):  # (not wait_for: see connect)
                    codes = await done
            except TimeoutError:
                raise LinkError(f"no answer to SUBSCRIBE {topic_filter} within {self.timeout:.0f}s") from None
            finally:
                self._subacks.pop(mid, None)
            if any(c >= 0x80 for c in codes):
                reason = REASONS.get(codes[0], f"reason code {codes[0]:#x}") if self.v5 else "refused"
                raise _Refused(f"the broker refused the subscription to {topic_filter} ({reason}): check the ACL")

    async def close(self) -> None:
        """Disconnect cleanly if still connected (the session stays on the broker), acknowledgements
        held for the next write (``ack(later=True)``) sent first."""
        try:
            if self._client._connection is not None and not self._client._connection.is_closing():
                if self._acks_due and not self.lost.is_set():
                    self._client._connection.send_package(self._due())
                async with asyncio.timeout(self.timeout):  # (not wait_for: see connect)
                    await self._client.disconnect()
        except (TimeoutError, OSError):
            pass

    # -- receiving --------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Messages received and not yet taken by :meth:`next_batch`."""
        return len(self._inbox)

    async def next_batch(self, limit: int, linger: float = 0.0) -> list[Delivery]:
        """At least one message (waiting for it), at most ``limit``; LinkError once the connection is lost.

        ``linger`` (seconds): while readings stream in (the batch before held more than one, and the
        first reading came less than 25 x ``linger`` after the one before it), wait until the first
        has waited that long, so that more go into the batch (each batch costs a store write and the
        broker's round trips); a lone reading after a quiet spell is taken at once.
        """
        while not self._inbox:
            if self.lost.is_set():
                raise LinkError(self.why_lost or "connection lost")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        inbox = self._inbox
        if linger > 0 and self._taken > 1 and self._gap < 25 * linger and len(inbox) < limit:
            wait = self._first + linger - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        batch = [inbox.popleft() for _ in range(min(limit, len(inbox)))]
        self._taken = len(batch)
        if inbox:  # more waited than one batch takes: the next batch is part of the same stream
            self._first, self._gap = self._loop.time(), 0.0
        if len(inbox) <= self.inbox_bound // 2:
            self._resume()
        return batch

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            transport = self._transport()
            if transport is not None:
                transport.resume_reading()

    def _expect(self) -> None:
        """Read the socket until the awaited answer came, even with a full inbox (it comes behind)."""
        self._expecting = True
        self._resume()

    def ack(self, deliveries: list[Delivery], *, later: bool = False) -> None:
        """Acknowledge these messages to the broker (those of QoS 0 need nothing).

        ``later``: in the same write as the next publishes (or the next ``ack`` without it), because
        they follow at once: one send(2) fewer per batch under load.
        """
        if self.lost.is_set():
            raise LinkError(self.why_lost or "connection lost")
        # One write for the lot: a send(2) per packet was much of the bridge's CPU (docs/proof.md, The bridge alone).
        # PUBACK with success and no properties is the same 4 bytes in MQTT 3.1.1 and 5 (spec 3.4.2.1).
        pack = _PUBACK.pack
        self._acks_due += [pack(0x40, 2, d.mid) for d in deliveries if d.mid is not None]
        if not later and self._acks_due:
            self._client._connection.send_package(self._due())

    def _due(self) -> bytes:
        data = b"".join(self._acks_due)
        self._acks_due = []
        return data

    def _take(self, delivery: Delivery) -> None:
        inbox = self._inbox
        now = self._loop.time()
        if not inbox:
            self._gap, self._first = now - self._last, now
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._last = now
        inbox.append(delivery)
        if len(inbox) > self.inbox_bound and not self._expecting:
            transport = self._transport()
            # Checked on every message: asyncio's stream reader under gmqtt may resume reading on its own.
            if transport is not None and transport.is_reading():
                transport.pause_reading()
                self._paused = True

    def _transport(self) -> Optional[asyncio.Transport]:
        connection = self._client._connection
        return connection._transport if connection is not None else None

    def _on_publish(self, cmd: int, raw: bytes) -> None:
        """A PUBLISH of QoS 0 or 1 without properties, read here: what nearly every reading is.

        gmqtt's own handler built a properties dict, unpacked by format strings and logged twice per
        message (most of the link's CPU per reading, docs/proof.md, Issue 18, The bridge); what it
        alone handles (properties such as a topic alias, QoS 2, an empty topic, a malformed packet)
        goes to it as before, and it drops a malformed packet with a logged error.
        """
        qos, size = (cmd >> 1) & 3, len(raw)
        topic_end = end = 2 + ((raw[0] << 8) | raw[1]) if size >= 2 else 0
        mid = None
        if qos == 1:
            end += 2
            mid = (raw[end - 2] << 8) | raw[end - 1] if end <= size else None
        if self.v5:  # a property length of 0, nothing else, or gmqtt reads the properties
            end = end + 1 if end < size and raw[end] == 0 else size + 1
        if qos > 1 or topic_end <= 2 or end > size:
            self._publish(cmd, raw)
            return
        try:
            topic = raw[2:topic_end].decode()
        except UnicodeDecodeError:  # brokers refuse such topics; be safe
            topic = raw[2:topic_end].decode("utf-8", "replace")
        self._take(Delivery(topic, raw[end:], qos, bool(cmd & 1), mid))

    def _on_qos1(self, mid: int, payload: bytes, topic: Any, properties: dict[str, Any]) -> None:
        self._take(Delivery(_text(topic), payload, 1, bool(properties.get("retain")), mid))

    def _on_qos0(self, client: Any, topic: Any, payload: bytes, qos: int, properties: dict[str, Any]) -> int:
        self._take(Delivery(_text(topic), payload, qos, bool(properties.get("retain")), None))
        return 0

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        # gmqtt passes the DISCONNECT the broker sent (MQTT 5: its reason code first), or b"" when the
        # connection just closed (which follows a DISCONNECT too: the first reason stays).
        if self.why_lost:
            pass
        elif isinstance(packet, (bytes, bytearray)) and packet:
            code = packet[0]
            self.why_lost = f"the broker disconnected the bridge: {DISCONNECT_REASONS.get(code, f'reason {code:#x}')}"
        else:
            self.why_lost = "connection closed"
        self.lost.set()
        self._acked.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- publishing -------------------------------------------------------------------------------

    def _on_puback(self, cmd: int, packet: bytes) -> None:
        topic = self._waiting.pop((packet[0] << 8) | packet[1], None) if len(packet) >= 2 else None
        if topic is None:  # not one of publish_all's (or malformed): gmqtt's own handling
            self._puback(cmd, packet)
            return
        self._ids.free_id((packet[0] << 8) | packet[1])
        if len(packet) > 2 and packet[2] >= 0x80:
            self._refused.append((topic, REASONS.get(packet[2], f"reason code {packet[2]:#x}")))
        self._acked.set()

    def _on_suback(self, client: Any, mid: int, codes: tuple[int, ...], properties: Any) -> None:
        done = self._subacks.get(mid)
        if done is not None and not done.done():
            done.set_result(list(codes))

    def _window(self, wanted: int) -> int:
        """Publishes in flight at once: ``wanted``, within the broker's receive maximum."""
        values = self._client._package_handler._connack_properties.get("receive_maximum")
        broker_max = values[0] if values else 65535
        return max(1, min(wanted, broker_max - 2))

    def publish_now(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 0, nothing awaited: for the periodic health document (vigil/core/health.py)."""
        self._client.publish(topic, payload, qos=0, retain=retain)

    async def publish_all(self, messages: list[tuple[str, bytes]], *, window: int = 1000,
                          timeout: float = 30.0) -> list[tuple[str, str]]:
        """Publish at QoS 1 and return once the broker acknowledged every one.

        Returns ``(topic, reason)`` of each message the broker acknowledged with a refusal
        (MQTT 5: not authorized, quota exceeded...). LinkError when the connection drops or the
        broker does not acknowledge within ``timeout``.
        """
        self._expect()
        try:
            await self._publish_all(messages, window, timeout)
        finally:
            self._expecting = False
        refused, self._refused = self._refused, []
        return refused

    async def _publish_all(self, messages: list[tuple[str, bytes]], window: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        window = self._window(window)
        connection = self._client._connection
        waiting, next_id, v5 = self._waiting, self._ids.next_id, self.v5
        start = 0
        while start < len(messages):
            while len(waiting) >= window:
                await self._wait_acks(deadline)
            if self.lost.is_set():
                raise LinkError(self.why_lost or "connection lost")
            chunk = messages[start:start + window - len(waiting)]
            start += len(chunk)
            packets = []
            for topic, payload in chunk:
                mid = next_id()
                waiting[mid] = topic
                packets.append(publish_packet(topic, payload, mid, v5))
            connection.send_package(self._due() + b"".join(packets))  # one write for the lot, as in ack()
        while waiting:
            await self._wait_acks(deadline)

    def _quickack(self) -> None:
        """Acknowledge TCP segments at once while waiting for PUBACKs (Linux).

        A broker with Nagle's algorithm on (Mosquitto's default, ``set_tcp_nodelay false``) holds
        its small PUBACKs until the previous segment is acknowledged, and the kernel delays that
        acknowledgement when the bridge has nothing to send: each batch waited for it, and the
        bridge ran far below its rate (docs/proof.md, The bridge alone).
        """
        transport = self._transport()
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    async def _wait_acks(self, deadline: float) -> None:
        self._quickack()
        if self.lost.is_set():
            raise LinkError(self.why_lost or "disconnected while waiting for the broker's acknowledgements")
        self._acked.clear()
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives together
        # with the acknowledgement, and the bridge (and `vigil up`) then never stopped.
        try:
            async with asyncio.timeout_at(deadline):
                await self._acked.wait()
        except TimeoutError:
            raise LinkError(f"the broker did not acknowledge {len(self._waiting)} messages in time") from None
        if self.lost.is_set():
            raise LinkError(self.why_lost or "disconnected while waiting for the broker's acknowledgements")


def publish_packet(topic: str, payload: bytes, mid: int, v5: bool) -> bytes:
    """A PUBLISH at QoS 1 without properties, as gmqtt builds it (without its two debug log calls
    and its Message object per event)."""
    name = topic.encode("utf-8", "replace")
    size = 4 + len(name) + v5 + len(payload)
    length = bytearray()
    while True:
        size, byte = divmod(size, 128)
        length.append(byte | 0x80 if size else byte)
        if not size:
            break
    return b"".join((b"\x32", length, _H.pack(len(name)), name, _H.pack(mid), b"\x00" if v5 else b"", payload))


def _text(topic: Any) -> str:
    # gmqtt hands over the topic as bytes when it is not UTF-8 (brokers refuse those; be safe).
    return topic if isinstance(topic, str) else bytes(topic).decode("utf-8", "replace")
