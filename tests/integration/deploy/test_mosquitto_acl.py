"""The shipped Mosquitto configuration (deploy/mosquitto/) against the real Mosquitto.

Each user gets what docs/production.md promises and nothing more: a refused publish gets
"Not authorized" in its PUBACK and never reaches a subscriber; a refused subscription gets
"Not authorized" in its SUBACK; a wrong password is refused at CONNECT; TLS works with the
certificates that deploy/mosquitto/make-certs.sh makes.
"""

from __future__ import annotations

import ssl
from typing import Callable

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.mqttclient import NOT_AUTHORIZED, Session
from tests.support.prodbroker import PASSWORDS, ProductionBroker

pytestmark = pytest.mark.integration

Login = Callable[..., Session]

# (user, topic, allowed?) — the publish side of the access list.
PUBLISH = [
    ("pi-1", "vigil/readings/pi-1/t0", True),
    ("pi-1", "vigil/readings/pi-1/kitchen/t0", True),
    ("pi-1", "vigil/status/pi-1", True),
    ("pi-1", "vigil/readings/pi-2/t0", False),
    ("pi-1", "vigil/status/pi-2", False),
    ("pi-1", "vigil/events/pi-1/temperature", False),
    ("pi-1", "vigil/alerts/freezer-warm/pi-1/t0/temperature", False),
    ("pi-1", "vigil/ack/freezer-warm/pi-1/t0/temperature", False),
    ("pi-1", "vigil/silences/s1", False),
    ("pi-1", "vigil/control/rules/reload", False),
    ("pi-1", "other/topic", False),
    ("pi-2", "vigil/readings/pi-2/t0", True),
    ("pi-2", "vigil/readings/pi-1/t0", False),
    ("vigil-bridge", "vigil/events/pi-1/temperature", True),
    ("vigil-bridge", "vigil/deadletter/readings", True),
    ("vigil-bridge", "vigil/readings/pi-1/t0", False),
    ("vigil-bridge", "vigil/alerts/r/pi-1/t0/temperature", False),
    ("vigil-alerting", "vigil/alerts/freezer-warm/pi-1/t0/temperature", True),
    ("vigil-alerting", "vigil/events/pi-1/temperature", False),
    ("vigil-alerting", "vigil/readings/pi-1/t0", False),
    ("vigil-alerting", "vigil/control/catchup/vigil-alerting", True),
    ("pi-1", "vigil/control/catchup/vigil-alerting", False),
    ("vigil-dashboard", "vigil/ack/freezer-warm/pi-1/t0/temperature", True),
    ("vigil-dashboard", "vigil/silences/s1", True),
    ("vigil-dashboard", "vigil/control/rules/reload", True),
    ("vigil-dashboard", "vigil/readings/webhook-1/t0", True),
    ("vigil-dashboard", "vigil/events/pi-1/temperature", False),
    ("vigil-dashboard", "vigil/alerts/freezer-warm/pi-1/t0/temperature", False),
    ("vigil-dashboard", "vigil/deadletter/readings", False),
]

# (user, filter, publisher, topic, delivered?) — the read side. Mosquitto 2.0 grants every
# SUBSCRIBE and checks read access when it delivers, so what a user observes is whether a
# message arrives.
READ = [
    ("pi-1", "vigil/readings/#", "pi-2", "vigil/readings/pi-2/t0", False),
    ("pi-1", "vigil/readings/pi-1/#", "vigil-dashboard", "vigil/readings/pi-1/t0", False),
    ("pi-1", "vigil/#", "vigil-bridge", "vigil/events/pi-2/temperature", False),
    ("pi-1", "#", "vigil-alerting", "vigil/alerts/r/pi-2/t0/temperature", False),
    ("vigil-bridge", "vigil/readings/#", "pi-2", "vigil/readings/pi-2/t0", True),
    ("vigil-bridge", "$share/vigil-bridges/vigil/readings/#", "pi-2", "vigil/readings/pi-2/t0", True),
    ("vigil-bridge", "vigil/status/+", "pi-2", "vigil/status/pi-2", False),
    ("vigil-bridge", "vigil/alerts/#", "vigil-alerting", "vigil/alerts/r/pi-2/t0/temperature", False),
    ("vigil-bridge", "vigil/ack/#", "vigil-dashboard", "vigil/ack/r/pi-2/t0/temperature", False),
    ("vigil-alerting", "vigil/events/#", "vigil-bridge", "vigil/events/pi-2/temperature", True),
    ("vigil-alerting", "$share/vigil-alerting/vigil/events/#", "vigil-bridge", "vigil/events/pi-2/temperature",
     True),
    ("vigil-alerting", "vigil/status/+", "pi-2", "vigil/status/pi-2", True),
    ("vigil-alerting", "vigil/alerts/#", "vigil-alerting", "vigil/alerts/r/pi-2/t0/temperature", False),
    ("vigil-alerting", "vigil/ack/#", "vigil-dashboard", "vigil/ack/r/pi-2/t0/temperature", True),
    ("vigil-alerting", "vigil/silences/+", "vigil-dashboard", "vigil/silences/s9", True),
    ("vigil-alerting", "vigil/control/rules/reload", "vigil-dashboard", "vigil/control/rules/reload", True),
    ("vigil-alerting", "vigil/readings/#", "pi-2", "vigil/readings/pi-2/t0", False),
    ("vigil-alerting", "vigil/deadletter/#", "vigil-bridge", "vigil/deadletter/readings", False),
    ("vigil-dashboard", "vigil/#", "vigil-bridge", "vigil/deadletter/readings", True),
    ("vigil-dashboard", "vigil/#", "pi-2", "vigil/readings/pi-2/t0", True),
    # the rule engine's catch-up marker comes back to it
    ("vigil-alerting", "vigil/control/catchup/vigil-alerting", "vigil-alerting",
     "vigil/control/catchup/vigil-alerting", True),
]


@pytest.mark.parametrize(("user", "topic", "allowed"), PUBLISH)
def test_publish_access(login: Login, user: str, topic: str, allowed: bool) -> None:
    reason = login(user).publish(topic, b'{"value": 1}')
    if allowed:
        assert not reason.is_failure, f"{user} should publish to {topic}, got {reason}"
    else:
        assert reason.value == NOT_AUTHORIZED, f"{user} must not publish to {topic}, got {reason}"
        assert str(reason) == "Not authorized"


@pytest.mark.parametrize(("user", "topic_filter", "publisher", "topic", "delivered"), READ)
def test_read_access(login: Login, user: str, topic_filter: str, publisher: str, topic: str,
                     delivered: bool) -> None:
    reader = login(user)
    reader.subscribe(topic_filter)
    # A second reader that may read everything shows when the message has been routed.
    control = login("vigil-dashboard")
    control.subscribe("vigil/#")
    assert not login(publisher).publish(topic, b'{"value": 2}').is_failure
    control.wait_for(topic)
    if delivered:
        assert reader.wait_for(topic).payload == b'{"value": 2}'
    else:
        reader.pump_for(0.3)
        assert reader.received_topics() == [], f"{user} read {topic} through {topic_filter}"


def test_reading_of_a_device_reaches_the_bridges_shared_group(login: Login) -> None:
    bridge = login("vigil-bridge")
    bridge.subscribe("$share/vigil-bridges/vigil/readings/#")
    device = login("pi-1")
    assert not device.publish("vigil/readings/pi-1/t0", b'{"value": 21.5, "seq": 1}').is_failure
    msg = bridge.wait_for("vigil/readings/pi-1/t0")
    assert msg.payload == b'{"value": 21.5, "seq": 1}'


def test_forged_reading_reaches_nobody(login: Login) -> None:
    bridge = login("vigil-bridge")
    bridge.subscribe("vigil/readings/#")
    device = login("pi-1")
    assert device.publish("vigil/readings/pi-2/t0", b'{"value": -99}').value == NOT_AUTHORIZED
    # Messages of one client arrive in order: once the next one is here, the forged one is not coming.
    device.publish("vigil/readings/pi-1/marker", b'{"value": 1}')
    bridge.wait_for("vigil/readings/pi-1/marker")
    assert bridge.received_topics() == ["vigil/readings/pi-1/marker"]


def test_last_will_only_for_the_devices_own_status(login: Login) -> None:
    watcher = login("vigil-alerting")
    watcher.subscribe("vigil/status/+")
    # pi-2's status is not pi-1's to announce: its will is dropped when it vanishes.
    forger = login("pi-1", will=("vigil/status/pi-2", b"offline"))
    forger.drop()
    honest = login("pi-2", will=("vigil/status/pi-2", b"offline"))
    honest.drop()
    msg = watcher.wait_for("vigil/status/pi-2")
    assert msg.payload == b"offline"
    assert watcher.received_topics() == ["vigil/status/pi-2"]
    login("pi-2").publish("vigil/status/pi-2", b"", retain=True)  # clear the retained will


def test_bridge_events_reach_the_rule_engine_and_alerts_the_dashboard(login: Login) -> None:
    engine = login("vigil-alerting")
    engine.subscribe("$share/vigil-alerting/vigil/events/#")
    engine.subscribe("vigil/ack/#")
    engine.subscribe("vigil/silences/+")
    engine.subscribe("vigil/control/rules/reload")
    dashboard = login("vigil-dashboard")
    dashboard.subscribe("vigil/alerts/#")
    dashboard.subscribe("vigil/deadletter/#")
    bridge = login("vigil-bridge")

    bridge.publish("vigil/events/pi-1/temperature", b'{"value": 8.5}')
    assert engine.wait_for("vigil/events/pi-1/temperature").payload == b'{"value": 8.5}'
    bridge.publish("vigil/deadletter/readings", b'{"reason": "not_json"}')
    assert dashboard.wait_for("vigil/deadletter/readings").payload == b'{"reason": "not_json"}'
    engine.publish("vigil/alerts/freezer-warm/pi-1/t0/temperature", b'{"state": "firing"}', retain=True)
    assert dashboard.wait_for("vigil/alerts/freezer-warm/pi-1/t0/temperature").payload == b'{"state": "firing"}'

    dashboard.publish("vigil/ack/freezer-warm/pi-1/t0/temperature", b'{"by": "ann"}')
    dashboard.publish("vigil/silences/maint-1", b'{"until": 1}', retain=True)
    dashboard.publish("vigil/control/rules/reload", b"{}")
    assert engine.wait_for("vigil/ack/freezer-warm/pi-1/t0/temperature").payload == b'{"by": "ann"}'
    assert engine.wait_for("vigil/silences/maint-1").payload == b'{"until": 1}'
    engine.wait_for("vigil/control/rules/reload")
    # Clear what was retained so that the module's broker is clean for the next test.
    dashboard.publish("vigil/silences/maint-1", b"", retain=True)
    engine.publish("vigil/alerts/freezer-warm/pi-1/t0/temperature", b"", retain=True)


def test_dashboard_http_ingest_reading_reaches_the_bridge(login: Login) -> None:
    bridge = login("vigil-bridge")
    bridge.subscribe("vigil/readings/#")
    login("vigil-dashboard").publish("vigil/readings/webhook-1/t0", b'{"value": 3}')
    assert bridge.wait_for("vigil/readings/webhook-1/t0").payload == b'{"value": 3}'


def test_a_username_with_a_slash_reaches_another_devices_topics(login: Login) -> None:
    # Why deploy/mosquitto/add-device.sh refuses such names (docs/production.md): Mosquitto
    # substitutes the username into vigil.acl's pattern as it is.
    slash = login("pi/1")
    assert not slash.publish("vigil/readings/pi/1", b'{"value": 1}').is_failure  # device "pi", sensor "1"
    assert slash.publish("vigil/readings/pi-1/t0", b'{"value": 1}').value == NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("pi-1", "wrong"),
        ("pi-1", ""),
        ("pi-1", None),
        ("nobody", "pi-1-secret"),
        (None, None),  # anonymous
        ("vigil-bridge", PASSWORDS["vigil-dashboard"]),
    ],
)
def test_bad_credentials_cannot_connect(prod_broker: ProductionBroker, username: str | None,
                                        password: str | None) -> None:
    s = Session(prod_broker.plain_port, username, password)
    reason: ReasonCode | None
    try:
        reason = s.connect()
    except ConnectionError:
        reason = s.connack  # the broker closed the socket right after its CONNACK
    finally:
        s.close()
    assert reason is not None and reason.is_failure, f"{username!r}/{password!r} was let in"
    assert reason.value == NOT_AUTHORIZED


def test_tls_listener_with_the_ca_from_make_certs(prod_broker: ProductionBroker) -> None:
    device = Session(prod_broker.tls_port, "pi-1", PASSWORDS["pi-1"], ca_file=prod_broker.ca_file)
    watcher = Session(prod_broker.tls_port, "vigil-bridge", PASSWORDS["vigil-bridge"],
                      ca_file=prod_broker.ca_file)
    try:
        assert not device.connect().is_failure
        assert not watcher.connect().is_failure
        watcher.subscribe("vigil/readings/#")
        assert not device.publish("vigil/readings/pi-1/tls", b'{"value": 4}').is_failure
        assert device.publish("vigil/readings/pi-2/tls", b'{"value": 4}').value == NOT_AUTHORIZED
        assert watcher.wait_for("vigil/readings/pi-1/tls").payload == b'{"value": 4}'
    finally:
        device.close()
        watcher.close()


def test_tls_listener_refuses_a_client_that_does_not_trust_its_certificate(
    prod_broker: ProductionBroker,
) -> None:
    # The system's trust store does not know the private CA: the handshake fails before MQTT.
    s = Session(prod_broker.tls_port, "pi-1", PASSWORDS["pi-1"])
    s.client.tls_set(tls_version=ssl.PROTOCOL_TLS_CLIENT)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            s.connect()
    finally:
        s.close()


def test_tls_port_does_not_accept_plain_mqtt(prod_broker: ProductionBroker) -> None:
    s = Session(prod_broker.tls_port, "pi-1", PASSWORDS["pi-1"])
    try:
        with pytest.raises((ConnectionError, TimeoutError, OSError)):
            s.connect(timeout=2.0)
    finally:
        s.close()
    assert s.connack is None
