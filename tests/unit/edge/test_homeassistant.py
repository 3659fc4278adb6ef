"""Home Assistant discovery messages (opt-in)."""

from __future__ import annotations

import json

from edge.config import EdgeConfig, HomeAssistantConfig, simulated_sensor
from edge.homeassistant import discovery_messages


def test_discovery_is_off_unless_asked_for() -> None:
    assert discovery_messages(EdgeConfig("pi", (simulated_sensor("t0"),))) == []


def test_one_retained_config_per_sensor_with_class_unit_state_and_availability() -> None:
    sensors = (simulated_sensor("freezer.top"), simulated_sensor("rh", metric="humidity", unit="%"))
    config = EdgeConfig("pi-1", sensors, homeassistant=HomeAssistantConfig(True, "homeassistant"))
    (t1, p1), (t2, p2) = discovery_messages(config)
    assert t1 == "homeassistant/sensor/vigil_pi-1/freezer_top/config"
    body = json.loads(p1)
    assert body["state_topic"] == "vigil/readings/pi-1/freezer.top"
    assert body["device_class"] == "temperature" and body["unit_of_measurement"] == "°C"
    assert body["availability_topic"] == "vigil/status/pi-1" and body["payload_available"] == "online"
    assert body["value_template"] == "{{ value_json.value }}"
    assert json.loads(p2)["device_class"] == "humidity" and t2.endswith("/rh/config")
