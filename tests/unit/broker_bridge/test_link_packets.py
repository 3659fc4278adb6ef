"""The link's own reading of PUBLISH and PUBACK packets (broker_bridge/link.py), fed straight into
gmqtt's packet handler as its read loop does: well-formed packets of MQTT 5 and 3.1.1, and malformed
ones of every kind, each dropped without stopping the link or losing the packets after it.

The same packets through a real Mosquitto: tests/integration/broker_bridge/test_link.py."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest
from gmqtt.mqtt.package import Package

from broker_bridge.link import Delivery, Link
from vigil.core.settings import MqttSettings


def publish(topic: bytes, payload: bytes, *, qos: int = 1, mid: int = 7, retain: bool = False,
            properties: bytes | None = b"\x00") -> tuple[int, bytes]:
    """(first byte, the rest after the remaining length) of a PUBLISH; ``properties=None`` for 3.1.1."""
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    return 0x30 | qos << 1 | int(retain), body + (properties or b"") + payload


def with_link(protocol: str, check: Callable[[Link], None]) -> None:
    async def main() -> None:
        link = Link(MqttSettings(url="mqtt://127.0.0.1:1", protocol=protocol), "unit-packets")
        link._client._connection_state.protocol_version = 5 if protocol == "5" else 4  # as after CONNECT
        check(link)

    asyncio.run(main())


def feed(link: Link, cmd: int, raw: bytes) -> None:
    link._client._package_handler(Package(cmd, raw))  # what gmqtt's read loop calls for each packet


def taken(link: Link) -> list[Delivery]:
    return list(link._inbox)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_well_formed_publishes_become_deliveries(protocol: str) -> None:
    props = b"\x00" if protocol == "5" else None

    def check(link: Link) -> None:
        feed(link, *publish(b"vigil/readings/d/t0", b'{"value":1}', mid=513, properties=props))
        feed(link, *publish("vigil/readings/Ω/t".encode(), b"", mid=65535, retain=True, properties=props))
        feed(link, *publish(b"vigil/readings/d/q0", b"21.5", qos=0, properties=props))
        assert taken(link) == [
            Delivery("vigil/readings/d/t0", b'{"value":1}', 1, False, 513),
            Delivery("vigil/readings/Ω/t", b"", 1, True, 65535),
            Delivery("vigil/readings/d/q0", b"21.5", 0, False, None),
        ]

    with_link(protocol, check)


def test_mqtt5_properties_go_to_gmqtt_and_arrive_the_same() -> None:
    def check(link: Link) -> None:
        content_type = b"\x03" + struct.pack("!H", 16) + b"application/json"
        feed(link, *publish(b"a/b", b"{}", mid=9, properties=bytes([len(content_type)]) + content_type))
        assert [(d.topic, d.payload, d.mid) for d in taken(link)] == [("a/b", b"{}", 9)]

    with_link("5", check)


def test_a_topic_that_is_not_utf8_is_replaced_not_refused() -> None:
    def check(link: Link) -> None:
        feed(link, *publish(b"vigil/readings/\xff\xfe/t0", b"1"))
        assert [d.topic for d in taken(link)] == ["vigil/readings/\ufffd\ufffd/t0"]

    with_link("5", check)


MALFORMED = [
    (0x32, b""),  # nothing at all
    (0x32, b"\x00"),  # half a topic length
    (0x32, b"\x00\x10abc"),  # a topic longer than the packet
    (0x32, b"\x00\x03abc"),  # QoS 1 without a packet id
    (0x32, b"\x00\x03abc\x00"),  # half a packet id
    (0x32, b"\x00\x03abc\x00\x07"),  # MQTT 5 without a property length
    (0x32, b"\x00\x03abc\x00\x07\x05\x01"),  # properties longer than the packet
    (0x32, b"\x00\x03abc\x00\x07\xff\xff\xff\xff\xff"),  # a property length that never ends
    (0x32, b"\x00\x03abc\x00\x07\x02\x7f\x00"),  # an unknown property
    (0x32, b"\x00\x00\x00\x07\x00x"),  # an empty topic and no alias
    (0x36, b"\x00\x03abc\x00\x07\x00x"),  # QoS 3
]


@pytest.mark.parametrize("cmd, raw", MALFORMED)
def test_a_malformed_publish_is_dropped_and_the_next_one_taken(cmd: int, raw: bytes) -> None:
    def check(link: Link) -> None:
        feed(link, cmd, raw)
        feed(link, *publish(b"after/bad", b"ok", mid=8))
        assert [(d.topic, d.payload, d.mid) for d in taken(link)][-1] == ("after/bad", b"ok", 8)
        assert all(d.topic and d.mid is not None for d in taken(link))

    with_link("5", check)


def test_pubacks_settle_publishes_and_refusals_and_malformed_ones_do_no_harm() -> None:
    def check(link: Link) -> None:
        ids = link._ids
        mids = [ids.next_id() for _ in range(3)]
        link._waiting.update({mids[0]: "vigil/events/a/t", mids[1]: "vigil/events/b/t", mids[2]: "vigil/events/c/t"})
        for raw in (b"", b"\x00", struct.pack("!HB", 40000, 0x87)):  # malformed, or not one of ours
            feed(link, 0x40, raw)
        feed(link, 0x40, struct.pack("!H", mids[0]))
        feed(link, 0x40, struct.pack("!HB", mids[1], 0x87) + b"\x00")
        feed(link, 0x40, struct.pack("!HB", mids[2], 0x10))  # "no matching subscribers": a success
        assert link._waiting == {}
        assert link._refused == [("vigil/events/b/t", "Not authorized")]
        assert not any(m in ids._used_ids for m in mids)

    with_link("5", check)


@pytest.mark.parametrize("v5", [True, False])
@pytest.mark.parametrize("topic, payload", [("vigil/events/d/temperature", b'{"value":1}'), ("vigil/events/Ω/t", b""),
                                            ("a" * 300, b"x" * 20_000), ("lone\udcff/t", b"1")])
def test_publish_packets_are_the_bytes_gmqtt_builds(v5: bool, topic: str, payload: bytes) -> None:
    from types import SimpleNamespace

    import gmqtt
    from gmqtt.mqtt.package import PublishPacket

    from broker_bridge.link import publish_packet

    ids = SimpleNamespace(next_id=lambda: 4242)
    _, built = PublishPacket.build_package(gmqtt.Message(topic, payload, qos=1),
                                           SimpleNamespace(proto_ver=5 if v5 else 4, id_generator=ids))
    assert publish_packet(topic, payload, 4242, v5) == bytes(built)
