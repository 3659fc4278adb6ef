"""Home Assistant MQTT discovery (opt-in): the sensors appear in Home Assistant by themselves."""

from __future__ import annotations

import re

from vigil import __version__
from vigil.core.topics import Topics

from .config import EdgeConfig
from .payload import status_payload

__all__ = ["discovery_messages"]

# Vigil metric -> Home Assistant sensor device class.
DEVICE_CLASSES = {
    "temperature": "temperature",
    "humidity": "humidity",
    "pressure": "pressure",
    "co2": "carbon_dioxide",
    "illuminance": "illuminance",
    "voltage": "voltage",
    "current": "current",
    "power": "power",
    "energy": "energy",
    "battery": "battery",
    "pm25": "pm25",
    "pm10": "pm10",
}
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _object_id(text: str) -> str:
    return _UNSAFE.sub("_", text)


def discovery_messages(config: EdgeConfig) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` of a retained config message per sensor, or nothing when disabled."""
    if not config.homeassistant.enabled:
        return []
    topics = Topics(config.mqtt.root)
    node = _object_id(f"vigil_{config.device}")
    out = []
    for sensor in config.sensors:
        body: dict[str, object] = {
            "name": sensor.name,
            "unique_id": f"{node}_{_object_id(sensor.name)}",
            "state_topic": topics.readings(config.device, sensor.name),
            "value_template": "{{ value_json.value }}",
            "unit_of_measurement": sensor.unit,
            "state_class": "measurement",
            "availability_topic": topics.status(config.device),
            "availability_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {"identifiers": [node], "name": config.device, "manufacturer": "Vigil",
                       "model": "vigil edge", "sw_version": __version__},
        }
        if sensor.metric in DEVICE_CLASSES:
            body["device_class"] = DEVICE_CLASSES[sensor.metric]
        topic = f"{config.homeassistant.prefix}/sensor/{node}/{_object_id(sensor.name)}/config"
        out.append((topic, status_payload(body)))
    return out
