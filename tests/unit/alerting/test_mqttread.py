"""The engine's PUBLISH decoder (alerting/mqttread.py): framing split anywhere, MQTT 3.1.1 and 5, hostile bytes;
and the aiomqtt / paho internals it reaches, which must fail here first when a new version changes them."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import random
import struct

import aiomqtt
import paho.mqtt.client as paho
import pytest

from alerting.mqttread import AIOMQTT_INTERNALS, MAX_PACKET, PAHO_INTERNALS, Decoder, Incoming, ProtocolError


def length(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, mid: int = 1, qos: int = 1, v5: bool = False, props: bytes = b"",
            dup: bool = False) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    if v5:
        body += length(len(props)) + props
    body += payload
    return bytes([0x30 | dup << 3 | qos << 1]) + length(len(body)) + body


SUBACK = b"\x90\x03\x00\x01\x01"
PINGRESP = b"\xd0\x00"


def feed_in_pieces(d: Decoder, data: bytes, cuts: list[int]) -> tuple[list[Incoming], bytes]:
    messages: list[Incoming] = []
    other = b""
    last = 0
    for cut in [*cuts, len(data)]:
        m, o = d.feed(data[last:cut])
        messages += m
        other += o
        last = cut
    return messages, other


@pytest.mark.parametrize("v5", [False, True])
def test_publishes_and_other_packets_split_anywhere(v5: bool) -> None:
    stream = b"".join([
        publish(b"vigil/events/a/t", b'{"x":1}', mid=7, v5=v5, props=b"\x01\x01" if v5 else b""),
        SUBACK,
        publish(b"vigil/health/x/y", b"h", qos=0, v5=v5),
        publish("vigil/events/é/t".encode(), b"p" * 300, mid=65535, v5=v5),  # a two-byte remaining length
        PINGRESP,
    ])
    rng = random.Random(1)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 8)))
        messages, other = feed_in_pieces(Decoder(v5), stream, cuts)
        assert messages == [Incoming("vigil/events/a/t", b'{"x":1}', 7), Incoming("vigil/health/x/y", b"h", 0),
                            Incoming("vigil/events/é/t", b"p" * 300, 65535)]
        assert other == SUBACK + PINGRESP


def test_one_byte_at_a_time() -> None:
    stream = publish(b"t", b"x" * 20000, mid=3) + PINGRESP
    messages, other = feed_in_pieces(Decoder(False), stream, list(range(1, len(stream))))
    assert messages == [Incoming("t", b"x" * 20000, 3)] and other == PINGRESP


def test_topic_not_utf8_is_refused_and_acknowledged_in_its_place() -> None:
    d = Decoder(False)
    messages, _ = d.feed(publish(b"vigil/events/\xff/t", b"{}", mid=5) + publish(b"ok", b"1", mid=6))
    assert [(m.mid, m.problem) for m in messages] == [(5, "topic not UTF-8"), (6, "")]
    assert messages[0].payload == b"" and messages[1].topic == "ok"


def test_oversized_publish_is_refused_without_being_kept() -> None:
    big = publish(b"vigil/events/a/t", b"x" * (MAX_PACKET + 10), mid=9)
    d = Decoder(False)
    messages, _ = feed_in_pieces(d, big + publish(b"after", b"1", mid=10), [30, 1000, 70000, 200000])
    assert [(m.mid, m.problem, m.topic) for m in messages] == [(9, "too large", "vigil/events/a/t"), (10, "", "after")]
    assert d.rest == b"" and d.skip == 0


def test_garbage_payload_is_passed_on_as_bytes() -> None:
    payload = bytes(range(256)) * 4
    messages, _ = Decoder(True).feed(publish(b"vigil/events/a/t", payload, mid=2, v5=True))
    assert messages == [Incoming("vigil/events/a/t", payload, 2)]


@pytest.mark.parametrize("stream", [
    b"\x32\xff\xff\xff\xff\x01",  # a remaining length of 5 bytes
    b"\x32\x04\x00\x09ab",  # a topic longer than the packet
    b"\x34\x05\x00\x01t\x00\x01",  # QoS 2
    b"\x36\x05\x00\x01t\x00\x01",  # QoS 3
    b"\x32\x05\x00\x01t\x00\x00",  # packet id 0
    b"\x32\x03\x00\x01t",  # no packet id
    b"\x90" + length(70000),  # a SUBACK of 70,000 bytes
])
def test_broken_framing_drops_the_connection(stream: bytes) -> None:
    with pytest.raises(ProtocolError):
        Decoder(False).feed(stream)


def test_v5_properties_longer_than_the_packet() -> None:
    with pytest.raises(ProtocolError):
        Decoder(True).feed(b"\x32\x06\x00\x01t\x00\x01\x09")


def test_random_bytes_never_raise_anything_but_protocol_error() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        d = Decoder(rng.random() < 0.5)
        try:
            for _ in range(3):
                d.feed(rng.randbytes(rng.randint(0, 40)))
        except ProtocolError:
            pass


async def test_the_internals_reached_are_there() -> None:
    """alerting/mqttread.py replaces paho's loop_read and _sock_recv on the instance and uses _sock,
    _out_packet, _packet_queue, _last_bytes_received; aiomqtt's _client and _disconnected. Written for
    aiomqtt 2.5.1 and paho-mqtt 2.2.0: a new version must be read again before this test is changed."""
    assert importlib.metadata.version("aiomqtt") == "2.5.1", "aiomqtt changed: check alerting/mqttread.py"
    assert importlib.metadata.version("paho-mqtt") == "2.2.0", "paho-mqtt changed: check alerting/mqttread.py"
    client = aiomqtt.Client("127.0.0.1", 1)
    for name in AIOMQTT_INTERNALS:
        assert hasattr(client, name), name
    inner = client._client
    for name in PAHO_INTERNALS:
        assert hasattr(inner, name), name
    # paho reads through _sock_recv(bufsize) and treats BlockingIOError as "nothing yet", b"" as closed
    source = inspect.getsource(paho.Client._packet_read)
    assert "self._sock_recv(" in source and "except BlockingIOError" in source
    assert "len(command) == 0" in source
    # queued packets are dicts written from "pos" by _packet_write
    assert list(inspect.signature(paho.Client._packet_queue).parameters)[:5] == ["self", "command", "packet", "mid",
                                                                                  "qos"]
    # aiomqtt's socket reader calls the paho client's loop_read, found on the instance
    assert "client.loop_read()" in inspect.getsource(aiomqtt.Client._on_socket_open)


async def test_broken_framing_closes_the_socket_and_ends_the_connection_for_the_consumer() -> None:
    """Through the real paho client: a good PUBLISH, then a remaining length of 5 bytes. The reader logs,
    paho closes the socket as for a lost connection, and the consumer is told (nothing acknowledged: the
    broker delivers the PUBLISH again on the next connection)."""
    import socket

    from alerting.mqttread import Reader

    client = aiomqtt.Client("127.0.0.1", 1)
    client._connected.set_result(None)  # as after a CONNACK: aiomqtt reports a disconnection only then
    refused: list[str] = []
    reader = Reader(client, False, lambda topic, reason, detail: refused.append(reason))
    reader.watch()
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client._client._sock = ours
    broker.sendall(publish(b"vigil/events/a/t", b"{}", mid=4) + b"\x32\xff\xff\xff\xff\x01")
    rc = client._client.loop_read()
    assert rc != 0 and client._client._sock is None  # paho closed it: connection lost
    assert reader.ready == []  # the chunk is dropped whole: its good PUBLISH, not acknowledged, comes again
    with pytest.raises(aiomqtt.MqttError):
        await asyncio.wait_for(reader.wait(), 5)
    assert refused == []
    broker.close()


def test_a_publish_delivered_again_says_so() -> None:
    stream = publish(b"vigil/events/a/t", b"1", mid=4, dup=True) + publish(b"vigil/events/a/t", b"2", mid=5)
    messages, _ = feed_in_pieces(Decoder(False), stream, [])
    assert [(m.payload, m.dup) for m in messages] == [(b"1", True), (b"2", False)]
