"""The Vigil edge agent: reads sensors on a device and delivers every reading over MQTT.

Standard library, paho-mqtt and PyYAML only, so that it installs on a Pi Zero.
"""

# ruff: noqa: E402  (the deferral below must come before the imports that load dataclasses)
from __future__ import annotations

from . import _deferred

# dataclasses imports inspect only to write a docstring for a dataclass that has none; every
# dataclass the agent uses has one, so inspect loads only if something really uses it (about
# 0.6 MB of the agent's peak RSS, docs/edge.md). Before anything here imports dataclasses.
_deferred.defer("inspect")

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
