"""The rule engine's read path: PUBLISH packets decoded here from large reads, acknowledged in one write a batch.

Why: a profile of the engine draining a backlog on aiomqtt (bench/rules/engine_drain.py --profile) showed
one socket read per packet (paho reads the fixed header byte by byte and ``loop_read`` takes one packet per
call), an MQTT 5 ``Properties`` object and an aiomqtt ``Message`` per message, one event-loop turn per
message, so batches of two, each with its own commit and one ``send`` per PUBACK. Here the socket is read
in chunks of up to :data:`CHUNK` bytes, the PUBLISH packets in them are decoded by :class:`Decoder`
(QoS 0 and 1, MQTT 3.1.1 and 5: properties skipped, the engine uses none), and a batch's PUBACKs leave in
one ``send`` (:meth:`Reader.ack`), after the engine committed the batch (alerting/mqttloop.py). Every
other packet (CONNACK, SUBACK, PUBACK of our own publishes, PINGRESP, DISCONNECT) goes to paho as
before, so connecting, subscribing, publishing and keepalive stay aiomqtt's and paho's.

Hostile input: a PUBLISH that is framed right but cannot be handled (topic not UTF-8, larger than
:data:`MAX_PACKET`: its bytes are thrown away as they come, never kept) is refused with a reason and
acknowledged like any message, so it does not come back; a packet whose framing is broken (remaining
length over 4 bytes, a topic longer than its packet, QoS 2 or 3, packet id 0, a packet other than
PUBLISH over 64 KiB) leaves no way to find the next one: the connection is dropped (as paho does), the
engine reconnects, and what it had not acknowledged comes again.

This reaches under aiomqtt 2.5.1 and paho-mqtt 2.2.0, here only (:data:`PAHO_INTERNALS`; checked at
attach, and by tests/unit/alerting/test_mqttread.py against the installed versions):

- paho ``Client.loop_read`` (what aiomqtt's socket reader calls) and ``Client._sock_recv`` (where paho's
  ``_packet_read`` reads) are replaced on the instance: ours reads the socket, paho reads the packets
  left for it;
- paho ``Client._sock`` (the socket), ``_out_packet`` and ``_packet_queue`` (PUBACKs sent directly
  when paho has nothing waiting to be written, else queued behind it, in order), and
  ``_last_bytes_received`` (paho's keepalive must know that bytes came);
- aiomqtt ``Client._client`` (the paho client) and ``Client._disconnected`` (the connection's end).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import aiomqtt

__all__ = ["CHUNK", "MAX_PACKET", "PAHO_INTERNALS", "Decoder", "Incoming", "ProtocolError", "Reader"]

log = logging.getLogger(__name__)

#: bytes asked of the socket in one read
CHUNK = 256 * 1024
#: a PUBLISH larger than this is refused without being kept (the engine refuses events over 64 KiB anyway)
MAX_PACKET = 256 * 1024
#: the largest packet other than PUBLISH we accept from a broker (CONNACK, SUBACK, ... are small)
MAX_OTHER = 64 * 1024

PAHO_INTERNALS = ("loop_read", "_sock_recv", "_sock", "_out_packet", "_packet_queue", "_last_bytes_received")
AIOMQTT_INTERNALS = ("_client", "_disconnected")

_PUBACK = struct.Struct("!BBH").pack


class ProtocolError(Exception):
    """The stream cannot be framed any more: the connection must be dropped."""


@dataclass(slots=True)
class Incoming:
    """One PUBLISH from the broker; ``mid`` 0 for QoS 0. A refused one has its reason in ``problem`` (and
    ``topic`` as far as it can be shown): it is acknowledged in its place, not handled."""

    topic: str
    payload: bytes
    mid: int
    problem: str = ""
    detail: str = ""
    #: the broker delivers it again (DUP): it was in flight to an earlier connection of this session
    dup: bool = False


class Decoder:
    """Splits the bytes of one connection into decoded PUBLISH packets and the other packets' bytes."""

    def __init__(self, v5: bool, max_packet: int = MAX_PACKET) -> None:
        self.v5 = v5
        self.max_packet = max_packet
        self.rest = b""  # the start of a packet not complete yet
        self.skip = 0  # bytes still to throw away of a PUBLISH over max_packet

    def feed(self, data: bytes) -> tuple[list[Incoming], bytes]:
        """The PUBLISH packets completed by ``data``, and the other packets' bytes (whole packets, in order)."""
        if self.skip:
            if len(data) <= self.skip:
                self.skip -= len(data)
                return [], b""
            data = data[self.skip:]
            self.skip = 0
        buf = self.rest + data if self.rest else data
        n = len(buf)
        pos = 0
        out: list[Incoming] = []
        other: list[bytes] = []
        v5 = self.v5
        while pos + 1 < n:
            first = buf[pos]
            i = pos + 1
            length = buf[i] & 127
            if buf[i] & 128:  # remaining length over more than one byte
                length, i = _varint(buf, i, n)
                if i < 0:
                    break  # incomplete
            else:
                i += 1
            end = i + length
            if first >> 4 != 3:
                if length > MAX_OTHER:
                    raise ProtocolError(f"a packet of type {first >> 4} of {length} bytes")
                if end > n:
                    break
                other.append(buf[pos:end])
                pos = end
                continue
            qos = (first >> 1) & 3
            if qos > 1:
                raise ProtocolError(f"a PUBLISH at QoS {qos}; the engine subscribes at QoS 1 at most")
            if length > self.max_packet:
                head = _oversized(buf, i, end, qos, length)
                if head is None:
                    break  # its topic and packet id not in yet
                out.append(head)
                if end > n:
                    self.skip = end - n
                    pos = n
                    break
                pos = end
                continue
            if end > n:
                break
            t = i + 2 + (buf[i] << 8 | buf[i + 1])
            if t > end or length < 2:
                raise ProtocolError("a PUBLISH whose topic is longer than the packet")
            p = t
            mid = 0
            if qos:
                if t + 2 > end:
                    raise ProtocolError("a PUBLISH without its packet id")
                mid = buf[t] << 8 | buf[t + 1]
                if not mid:
                    raise ProtocolError("a PUBLISH with packet id 0")
                p = t + 2
            if v5:
                props, p = _varint(buf, p, end)
                p += props
                if p < props or p > end:
                    raise ProtocolError("a PUBLISH whose properties are longer than the packet")
            try:
                out.append(Incoming(buf[i + 2:t].decode(), buf[p:end], mid, dup=bool(first & 8)))
            except UnicodeDecodeError:
                out.append(Incoming(buf[i + 2:t].decode("utf-8", "replace"), b"", mid, "topic not UTF-8",
                                    repr(buf[i + 2:t][:100])))
            pos = end
        self.rest = buf[pos:] if pos < n else b""
        return out, b"".join(other)


def _varint(buf: bytes, i: int, end: int) -> tuple[int, int]:
    """A variable byte integer (remaining length, properties length) from ``buf[i]``: (value, index after it),
    or (0, -1) if ``end`` comes first; ProtocolError past 4 bytes."""
    value = 0
    mult = 1
    for k in range(4):
        if i + k >= end:
            return 0, -1
        b = buf[i + k]
        value += (b & 127) * mult
        if not b & 128:
            return value, i + k + 1
        mult *= 128
    raise ProtocolError("a variable byte integer of more than 4 bytes")


def _oversized(buf: bytes, i: int, end: int, qos: int, length: int) -> Optional[Incoming]:
    """A PUBLISH over the limit, refused: its packet id from its first bytes, or None until they are in."""
    if i + 2 > len(buf):
        return None
    t = i + 2 + (buf[i] << 8 | buf[i + 1])
    if t + 2 * qos > end:
        raise ProtocolError("a PUBLISH whose topic is longer than the packet")
    if t + 2 * qos > len(buf):
        return None
    mid = buf[t] << 8 | buf[t + 1] if qos else 0
    if qos and not mid:
        raise ProtocolError("a PUBLISH with packet id 0")
    topic = buf[i + 2:t].decode("utf-8", "replace")
    return Incoming(topic, b"", mid, "too large", f"{length} bytes, the limit is {MAX_PACKET}")


def check_internals(client: aiomqtt.Client) -> Any:
    """The paho client under ``client``; a clear error if aiomqtt or paho no longer have what we reach."""
    missing = [name for name in AIOMQTT_INTERNALS if not hasattr(client, name)]
    paho_client = getattr(client, "_client", None)
    missing += [f"paho.{name}" for name in PAHO_INTERNALS if not hasattr(paho_client, name)]
    if missing:
        raise RuntimeError(f"alerting/mqttread.py reaches under aiomqtt 2.5.1 and paho-mqtt 2.2.0; the installed "
                           f"versions lack {', '.join(missing)}")
    return paho_client


class Reader:
    """Takes over the reading of one aiomqtt client's socket (attach before connecting); used on the event
    loop only. ``refuse(topic, reason, detail)`` hears of every refused PUBLISH."""

    def __init__(self, client: aiomqtt.Client, v5: bool, refuse: Callable[[str, str, str], None]) -> None:
        self.client = client
        self.paho = check_internals(client)
        self.decoder = Decoder(v5)
        self.refuse = refuse
        self.ready: list[Incoming] = []
        self.for_paho = b""
        self.eof = False
        self.lost: Optional[BaseException] = None
        self._waiter: Optional[asyncio.Future[None]] = None
        self._want = 1
        self._paho_loop_read = self.paho.loop_read
        self.paho.loop_read = self.loop_read
        self.paho._sock_recv = self._sock_recv

    # -- reading (called by aiomqtt's socket reader, through paho's loop_read) ---------------------------

    def loop_read(self, max_packets: int = 1) -> int:
        paho = self.paho
        sock = paho._sock
        if sock is None:
            return int(self._paho_loop_read())
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            data = None
        except OSError:
            data = b""
        if data == b"":
            self.eof = True
        elif data:
            paho._last_bytes_received = time.monotonic()
            try:
                messages, other = self.decoder.feed(data)
            except ProtocolError as exc:
                log.error("the broker sent what is not MQTT (%s): dropping the connection; what was not "
                          "acknowledged comes again", exc)
                self.eof = True
            else:
                if other:
                    self.for_paho += other
                if messages:
                    for m in messages:
                        if m.problem:
                            self.refuse(m.topic, m.problem, m.detail)
                    self.ready += messages
                    self._wake()
        rc = 0
        while self.for_paho or self.eof:
            rc = int(self._paho_loop_read())
            if rc or paho._sock is None:
                break
        return rc

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho's read: whole packets left for it, then nothing until the next read of ours."""
        data = self.for_paho
        if data:
            self.for_paho = data[bufsize:]
            return data[:bufsize]
        if self.eof:
            return b""
        raise BlockingIOError

    # -- taking and acknowledging (the consumer, alerting/mqttloop.py) ------------------------------------

    def watch(self) -> None:
        """Connected: the connection's end wakes the consumer (call after entering the client)."""
        self.client._disconnected.add_done_callback(self._ended)

    def _ended(self, fut: asyncio.Future[None]) -> None:
        self.lost = (fut.exception() if not fut.cancelled() else None) or aiomqtt.MqttError("disconnected")
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done() and (len(self.ready) >= self._want or self.lost is not None):
            w.set_result(None)

    def _timeout(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, want: int = 1, timeout: Optional[float] = None) -> None:
        """Until ``want`` messages are ready, or ``timeout`` seconds passed; MqttError once the connection is
        lost (what is ready then is not handled: it was not acknowledged, so it comes again)."""
        if self.lost is None and len(self.ready) < want:
            loop = asyncio.get_running_loop()
            self._want = want
            self._waiter = loop.create_future()
            timer = loop.call_later(timeout, self._timeout) if timeout is not None else None
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self.lost is not None:
            raise aiomqtt.MqttError(f"connection lost: {self.lost}")

    def take(self, limit: int) -> list[Incoming]:
        batch = self.ready[:limit]
        del self.ready[:limit]
        return batch

    def ack(self, messages: list[Incoming]) -> None:
        """The PUBACKs of ``messages`` (QoS 1 ones), in order, in one write."""
        buf = b"".join([_PUBACK(0x40, 2, m.mid) for m in messages if m.mid])
        if not buf:
            return
        paho = self.paho
        sock = paho._sock
        if sock is None:
            return  # gone: the broker sends them again
        if not paho._out_packet:
            try:
                sent = sock.send(buf)
            except OSError:  # BlockingIOError, ssl.SSLWantWriteError, or the connection broke
                sent = 0
            if sent == len(buf):
                return
            buf = buf[sent:]
        paho._packet_queue(0x40, buf, 0, 0)  # written by paho when the socket takes more, in order
