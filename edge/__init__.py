"""The Vigil edge agent: reads sensors on a device and delivers every reading over MQTT.

Standard library, paho-mqtt and PyYAML only, so that it installs on a Pi Zero.
"""

from __future__ import annotations

from .agent import EdgeAgent
from .clock import Clock, ManualClock, SystemClock
from .config import (
    BufferConfig,
    EdgeConfig,
    HomeAssistantConfig,
    MqttConfig,
    SensorConfig,
    load_edge_file,
    parse_edge_section,
    simulated_sensor,
)
from .errors import EdgeConfigError, EdgeError, QueueError, SensorError
from .sensors import Fault

__all__ = [
    "BufferConfig",
    "Clock",
    "EdgeAgent",
    "EdgeConfig",
    "EdgeConfigError",
    "EdgeError",
    "Fault",
    "HomeAssistantConfig",
    "ManualClock",
    "MqttConfig",
    "QueueError",
    "SensorConfig",
    "SensorError",
    "SystemClock",
    "load_edge_file",
    "parse_edge_section",
    "simulated_sensor",
]
