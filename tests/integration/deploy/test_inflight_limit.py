"""Which in-flight limit Mosquitto applies to a slow QoS 1 subscriber (docs/production.md).

The bridge holds readings unacknowledged until its batch is stored; how many the broker sends
it at once decides how fast its queue fills. Measured here on the real Mosquitto: the client's
MQTT 5 receive maximum when it sends one, else max_inflight_messages.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration


def unacknowledged_deliveries(tmp_path: Path, max_inflight: int, receive_maximum: Optional[int]) -> int:
    """How many QoS 1 messages a subscriber that never acknowledges gets out of 3000."""
    conf = tmp_path / f"inflight-{max_inflight}-{receive_maximum}.conf"
    conf.write_text(f"allow_anonymous true\nmax_inflight_messages {max_inflight}\nmax_queued_messages 100000\n")
    broker = Mosquitto(tmp_path / conf.stem, conf_file=conf)
    broker.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="slow", protocol=mqtt.MQTTv5, manual_ack=True)
    got = [0]

    def on_message(c: Any, u: Any, m: mqtt.MQTTMessage) -> None:
        got[0] += 1  # and never acknowledged

    client.on_message = on_message
    try:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect("127.0.0.1", broker.port, properties=props)
        client.subscribe("t/#", qos=1)
        for _ in range(10):
            client.loop(0.05)
        subprocess.run(f"seq 1 3000 | mosquitto_pub -p {broker.port} -q 1 -l -t t/x", shell=True, check=True,
                       timeout=60)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            client.loop(0.05)
        return got[0]
    finally:
        client.disconnect()
        client.loop(0.05)
        broker.stop()


@pytest.mark.parametrize(
    ("max_inflight", "receive_maximum", "expected"),
    [(20, 1000, 1000), (1000, 100, 100), (20, None, 20), (1000, None, 1000)],
)
def test_mosquitto_sends_a_slow_client_its_receive_maximum_else_max_inflight_messages(
    tmp_path: Path, max_inflight: int, receive_maximum: Optional[int], expected: int,
) -> None:
    assert unacknowledged_deliveries(tmp_path, max_inflight, receive_maximum) == expected
