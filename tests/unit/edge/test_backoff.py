"""The agent reconnects by vigil.core.backoff.Rotation: its reconnect_min/max, over every broker of mqtt.url."""

from __future__ import annotations

import random
import threading

from edge.config import EdgeConfig, MqttConfig, SensorConfig
from edge.link import MqttLink
from vigil.core.backoff import backoff_delay
from vigil.core.clock import SystemClock


def test_the_link_rotates_over_every_broker_then_waits_by_its_reconnect_settings() -> None:
    mqtt = MqttConfig(url="mqtt://a:1883,mqtt://b:1884", reconnect_min=2.0, reconnect_max=120.0)
    config = EdgeConfig(device="pi", sensors=(SensorConfig("t", "simulated", None),), mqtt=mqtt)
    link = MqttLink(config, None, SystemClock(), threading.Event(), lambda s: {}, lambda: (), lambda: [],  # type: ignore[arg-type]
                    env={}, rng=random.Random(5))
    assert [str(b) for b in link.brokers] == ["mqtt://a:1883", "mqtt://b:1884"]
    assert link.broker.host == "a"
    assert link.rotation.failed() == 0.0 and link.broker.host == "b"  # the next broker at once
    expected = random.Random(5)
    delays = [link.rotation.failed() for _ in range(6)]
    assert delays[1::2] == [0.0, 0.0, 0.0]  # each round: at once to the other broker, ...
    assert delays[0::2] == [backoff_delay(n, 120.0, first=2.0, rng=expected) for n in (1, 2, 3)]  # ... then a wait
