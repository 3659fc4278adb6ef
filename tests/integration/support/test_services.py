"""The harness itself: a publish through the private Mosquitto is received; restarts work."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.services import Mosquitto, wait_until


def _client(broker: Mosquitto, client_id: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    return c


def test_publish_through_private_mosquitto_is_received(mosquitto: Mosquitto) -> None:
    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    sub = _client(mosquitto, "t-sub")
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe("vigil/readings/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(5)
        pub = _client(mosquitto, "t-pub")
        pub.loop_start()
        payload = '{"value": 1.5, "ts": 1, "unit": "°C"}'.encode()
        pub.publish("vigil/readings/pi-1/t0", payload, qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        assert wait_until(lambda: len(got) == 1, 5)
        assert got == [("vigil/readings/pi-1/t0", '{"value": 1.5, "ts": 1, "unit": "°C"}'.encode())]
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_mosquitto_restarts_on_the_same_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.running and mosquitto.port == port
    c = _client(mosquitto, "t-again")
    rc = c.publish("x/y", b"1", qos=0).rc
    c.disconnect()
    assert rc == mqtt.MQTT_ERR_SUCCESS
