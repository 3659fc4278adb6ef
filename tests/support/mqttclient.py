"""A small synchronous MQTT 5 client for access tests: every call returns the broker's answer.

It drives paho's network loop in the calling thread (no background thread), so a test sees the
exact reason code of each CONNACK, PUBACK and SUBACK and leaves nothing running.
"""

from __future__ import annotations

import ssl
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

NOT_AUTHORIZED = 135


class Session:
    """One MQTT 5 connection as ``username``; ``connect()`` returns the CONNACK reason code."""

    def __init__(self, port: int, username: Optional[str], password: Optional[str], *,
                 ca_file: Optional[Path] = None, will: Optional[tuple[str, bytes]] = None,
                 client_id: Optional[str] = None, session_expiry: int = 0) -> None:
        self.port = port
        self.username = username
        self.will = will
        self.gone = False  # dropped or closed
        self.session_expiry = session_expiry
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.connack: Optional[ReasonCode] = None
        self.session_present = False
        self.acks: dict[int, Any] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connack = reason
        self.session_present = bool(flags.session_present)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self.acks[mid] = reason

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        self.acks[mid] = reasons

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg)

    def _pump(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the broker within {timeout}s: {what}")
            rc = self.client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and not done():
                raise ConnectionError(f"connection lost while waiting for {what}: {mqtt.error_string(rc)}")

    def connect(self, timeout: float = 5.0) -> ReasonCode:
        """Connect and return the CONNACK's reason code (``.is_failure`` when refused).

        With ``session_expiry`` the session is resumed if the broker has one, and kept that many
        seconds after a disconnect (as Vigil's services do); without, it starts clean.
        """
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry
        self.client.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.session_expiry == 0,
                            properties=properties)
        self._pump(lambda: self.connack is not None, timeout, "CONNACK")
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False,
                timeout: float = 5.0) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._pump(lambda: info.mid in self.acks, timeout, f"PUBACK for {topic}")
        reason: ReasonCode = self.acks.pop(info.mid)
        return reason

    def subscribe(self, topic_filter: str, timeout: float = 5.0) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's reason code (granted QoS or a failure)."""
        rc, mid = self.client.subscribe(topic_filter, qos=1)
        if mid is None:
            raise ConnectionError(f"cannot subscribe to {topic_filter}: {mqtt.error_string(rc)}")
        self._pump(lambda: mid in self.acks, timeout, f"SUBACK for {topic_filter}")
        reasons: list[ReasonCode] = self.acks.pop(mid)
        return reasons[0]

    def wait_for(self, topic: str, timeout: float = 5.0) -> mqtt.MQTTMessage:
        """The first message received on ``topic``, waiting for it if needed."""
        self._pump(lambda: any(m.topic == topic for m in self.messages), timeout, f"a message on {topic}")
        return next(m for m in self.messages if m.topic == topic)

    def pump_for(self, seconds: float) -> None:
        """Keep receiving for ``seconds`` (to show that something does NOT arrive)."""
        deadline = time.monotonic() + seconds
        self._pump(lambda: time.monotonic() > deadline, seconds + 1.0, "nothing")

    def alive(self) -> bool:
        """Whether the connection is still up after receiving what has arrived."""
        try:
            self.pump_for(0.05)
        except ConnectionError:
            return False
        return self.client.is_connected()

    def received_topics(self) -> list[str]:
        return [m.topic for m in self.messages]

    def drop(self) -> None:
        """Vanish without DISCONNECT (as a device losing power), so the broker sends the will."""
        self.gone = True
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self, *, end_session: bool = False) -> None:
        """Disconnect; ``end_session`` also ends a persistent session (expiry 0 in the DISCONNECT)."""
        self.gone = True
        if self.client.is_connected():
            properties = None
            if end_session and self.session_expiry:
                properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = 0
            self.client.disconnect(properties=properties)
            self.client.loop(timeout=0.05)
        sock = self.client.socket()
        if sock is not None:
            sock.close()
