"""The MQTT link: one thread owns one paho client per connection and does all network work.

It connects (TLS, MQTT 5 or 3.1.1, username/password), publishes the retained birth and
keeps a retained last will on ``<root>/status/<device>``, hands the forwarder a publish
function, and reconnects: with several brokers (``mqtt.url`` a list) to the next one at once, and
with jittered exponential backoff once every broker failed (vigil.core.backoff.Rotation). It logs
one line per change of state (connected, lost, unreachable, refused), not one per attempt.

With ``protocol: auto`` (the default) it tries MQTT 5 and, when the broker refuses it
(CONNACK "unsupported protocol version", which a 3.1.1 broker sends as return code 1) or
closes or does not answer the CONNECT, tries 3.1.1 at once; once 3.1.1 connected it stays
with it, and the "connected" line says why. An explicit "5" or "3.1.1" is used as given.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from vigil.core.backoff import Rotation
from vigil.core.clock import Clock
from vigil.core.topics import Topics
from vigil.core.urls import BrokerUrl

from .config import EdgeConfig
from .forwarder import Forwarder
from .payload import status_payload

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)

LOOP_TIMEOUT = 0.1
# CONNACK reason codes: MQTT 5's "Unsupported protocol version" (paho also reports a 3.1.1
# broker's return code 1 so) and 3.1.1's return code 1 itself.
UNSUPPORTED_PROTOCOL = (0x84, 1)
# A status update for a change (drops, errors) goes out at most this often.
STATUS_MIN_GAP = 2.0


class MqttLink:
    """Runs in its own thread (``run``) until ``stop`` is set."""

    def __init__(self, config: EdgeConfig, forwarder: Forwarder, clock: Clock, stop: threading.Event,
                 status: Callable[[str], dict[str, Any]], fingerprint: Callable[[], tuple[int, ...]],
                 discovery: Callable[[], list[tuple[str, bytes]]],
                 env: Optional[dict[str, str]] = None, rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.forwarder = forwarder
        self.clock = clock
        self.stop = stop
        self.status = status
        self.fingerprint = fingerprint
        self.discovery = discovery
        self.brokers = config.mqtt.brokers(env)
        self.topics = Topics(config.mqtt.root)
        self.status_topic = self.topics.status(config.device)
        self.rotation = Rotation(len(self.brokers), config.mqtt.reconnect_max, first=config.mqtt.reconnect_min,
                                 rng=rng, clock=clock.monotonic)
        self.connected = threading.Event()
        self.connects = 0
        self.last_problem: Optional[str] = None
        self._state = ""
        self._connack: Optional[Any] = None
        self._disconnect_reason: Optional[str] = None
        self._bad_acks: set[str] = set()
        # The version this connection attempt speaks: auto starts with 5.
        self.protocol = "3.1.1" if config.mqtt.protocol == "3.1.1" else "5"
        self._fallback_why: Optional[str] = None   # why 3.1.1 is being tried, until it connected
        self._fallback_kept = False

    @property
    def broker(self) -> BrokerUrl:
        """The broker being tried or in use."""
        return self.brokers[self.rotation.index]

    # -- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop.is_set():
            if self._session():
                continue  # MQTT 5 was not spoken there: 3.1.1 at once
            if self.stop.is_set():
                break
            delay = self.rotation.failed()  # the next broker at once; a wait after a whole round failed
            if delay:
                self.stop.wait(delay)

    def _session(self) -> bool:
        """One connection, from CONNECT to its end; True to try again at once with MQTT 3.1.1."""
        client = self._client()
        self._connack = None
        self._disconnect_reason = None
        try:
            kwargs: dict[str, Any] = {"clean_start": True} if self.protocol == "5" else {}
            client.connect(self.broker.host, self.broker.port, self.config.mqtt.keepalive, **kwargs)
        except (OSError, ValueError) as exc:
            self._change("unreachable", logging.WARNING, "cannot reach the broker %s: %s; readings are "
                         "buffered, retrying with backoff up to %gs", self.broker, exc, self.config.mqtt.reconnect_max)
            self._close(client)
            self._fallback_failed()
            return False
        deadline = self.clock.monotonic() + self.config.mqtt.connect_timeout
        while self._connack is None and not self.stop.is_set() and self.clock.monotonic() < deadline:
            if client.loop(LOOP_TIMEOUT) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if self._connack is None or self._connack.is_failure:
            if self._try_311(self._connack):
                self._close(client)
                return True
            self._fallback_failed()
            if self._connack is not None:
                why = str(self._connack)
                hint = (" (check mqtt.username and mqtt.password or VIGIL_MQTT_PASSWORD)"
                        if self._connack.value in (4, 5, 0x86, 0x87) else
                        ' (the broker does not speak MQTT 5: set mqtt.protocol to "auto" or "3.1.1")'
                        if self._connack.value in UNSUPPORTED_PROTOCOL else "")
                self._change(f"refused:{why}", logging.ERROR, "the broker %s refused the connection: %s%s; "
                             "retrying with backoff up to %gs", self.broker, why, hint, self.config.mqtt.reconnect_max)
            elif not self.stop.is_set():
                self._change("noconnack", logging.WARNING, "the broker %s did not answer the connect "
                             "(%s); retrying with backoff up to %gs", self.broker,
                             self._disconnect_reason or "timeout", self.config.mqtt.reconnect_max)
            self._close(client)
            return False
        self._online(client)
        return False

    def _try_311(self, connack: Optional[Any]) -> bool:
        """With protocol auto: after MQTT 5 was refused as a version, or got no answer, try 3.1.1."""
        if self.config.mqtt.protocol != "auto" or self.protocol != "5" or self.stop.is_set():
            return False
        if connack is None:
            why = (f"it closed the connection ({self._disconnect_reason})" if self._disconnect_reason
                   else f"no answer to an MQTT 5 CONNECT within {self.config.mqtt.connect_timeout:g}s")
        elif connack.value in UNSUPPORTED_PROTOCOL:
            why = f"it answered an MQTT 5 CONNECT with {connack}"
        else:
            return False
        log.debug("the broker %s: %s; trying MQTT 3.1.1", self.broker, why)
        self.protocol, self._fallback_why = "3.1.1", why
        return True

    def _fallback_failed(self) -> None:
        """3.1.1 did not connect either: the next attempt starts with MQTT 5 again."""
        if self._fallback_why is not None and not self._fallback_kept:
            self.protocol, self._fallback_why = "5", None

    def _online(self, client: mqtt.Client) -> None:
        self.rotation.connected()
        self.connects += 1
        if self._fallback_why is not None and not self._fallback_kept:
            self._fallback_kept = True
            # One line that says it all: the version, why, and how to choose.
            self._change("connected", logging.WARNING, "connected to %s as %s (MQTT 3.1.1: the broker does not "
                         "speak MQTT 5, %s; this agent stays with 3.1.1 until restarted; mqtt.protocol \"3.1.1\" "
                         "skips the MQTT 5 try)", self.broker, self.config.client_id, self._fallback_why)
        else:
            self._change("connected", logging.INFO, "connected to %s as %s (MQTT %s)", self.broker,
                         self.config.client_id, self.protocol)
        self.connected.set()
        self.forwarder.connected()
        # The figures before the status is built: a drop between the two is then seen as a change and told.
        reported = self.fingerprint()
        self._publish_status(client, "online")
        for topic, payload in self.discovery():
            client.publish(topic, payload, qos=1, retain=True)
        last_status = self.clock.monotonic()
        publish = self._publisher(client)

        while not self.stop.is_set():
            rc = client.loop(LOOP_TIMEOUT)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self.forwarder.pump(publish)
            now = self.clock.monotonic()
            figures = self.fingerprint()
            if now - last_status >= self.config.status_interval or (
                    figures != reported and now - last_status >= STATUS_MIN_GAP):
                self._publish_status(client, "online")
                last_status, reported = now, figures
        self.connected.clear()
        if self.stop.is_set():
            self._goodbye(client)
        else:
            self._change("lost", logging.WARNING, "lost the connection to %s (%s); readings are buffered, "
                         "reconnecting with backoff up to %gs", self.broker,
                         self._disconnect_reason or "connection closed", self.config.mqtt.reconnect_max)
            self._close(client)
        self.forwarder.disconnected()

    def _goodbye(self, client: mqtt.Client) -> None:
        """On a clean stop: send what is queued (up to 2 s), say offline ourselves, then disconnect."""
        deadline = self.clock.monotonic() + 2.0
        while self.clock.monotonic() < deadline:
            sent = self.forwarder.pump(self._publisher(client))
            if not sent and not self.forwarder.inflight and not self.forwarder.backlog_pending:
                break
            if client.loop(LOOP_TIMEOUT) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return self._close(client)
        info = client.publish(self.status_topic, status_payload(self.status("offline")), qos=1, retain=True)
        deadline = self.clock.monotonic() + 2.0
        while not info.is_published() and self.clock.monotonic() < deadline:
            if client.loop(LOOP_TIMEOUT) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self.forwarder.flush_acks()
        client.disconnect()
        client.loop(LOOP_TIMEOUT)
        self._close(client)
        log.info("disconnected from %s", self.broker)

    # -- paho ---------------------------------------------------------------------------

    def _client(self) -> mqtt.Client:
        m = self.config.mqtt
        v5 = self.protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.connect_timeout = m.connect_timeout
        client.max_inflight_messages_set(self.forwarder.max_inflight)
        client.max_queued_messages_set(0)
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set(ca_certs=m.ca_file, certfile=m.cert_file, keyfile=m.key_file)
            client.tls_insecure_set(m.tls_insecure)
        client.will_set(self.status_topic, status_payload({"state": "offline", "device": self.config.device,
                                                           "reason": "connection lost"}), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack = reason

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._disconnect_reason = str(reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        ok = not getattr(reason, "is_failure", False)
        if not ok and str(reason) not in self._bad_acks:
            self._bad_acks.add(str(reason))
            what = "a reading" if mid in self.forwarder.inflight else "a status or discovery message"
            log.error("the broker %s refused %s: %s (check its ACL: with Vigil's, the MQTT username must be "
                      "the device id, %s)", self.broker, what, reason, self.config.device)
        self.forwarder.acked(mid, ok)

    def _publisher(self, client: mqtt.Client) -> Callable[[str, bytes], Optional[int]]:
        def publish(topic: str, payload: bytes) -> Optional[int]:
            info = client.publish(topic, payload, qos=1)
            return info.mid if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

        return publish

    def _publish_status(self, client: mqtt.Client, state: str) -> None:
        client.publish(self.status_topic, status_payload(self.status(state)), qos=1, retain=True)

    def _close(self, client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _change(self, state: str, level: int, message: str, *args: Any) -> None:
        """Log a state change once; the same state again is only a debug line."""
        if state != "connected":
            self.last_problem = message % args
        log.log(level if state != self._state else logging.DEBUG, message, *args)
        self._state = state
