"""The Vigil edge agent: reads sensors on a device and delivers every reading over MQTT.

Standard library, paho-mqtt and PyYAML only, so that it installs on a Pi Zero.
"""

# ruff: noqa: E402  (the deferrals below must come before the imports of paho and dataclasses)
from __future__ import annotations

from . import _deferred

# Modules imported for what the agent never does load only if used (docs/edge.md, Footprint):
# paho's proxy and WebSocket helpers, and inspect, which dataclasses needs only to write a
# missing docstring (every dataclass here has one). Here, as the package is imported before any
# of its modules.
for _name in (*_deferred.PAHO_UNUSED, "inspect"):
    _deferred.defer(_name)

from .agent import EdgeAgent
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
    "EdgeAgent",
    "EdgeConfig",
    "EdgeConfigError",
    "EdgeError",
    "Fault",
    "HomeAssistantConfig",
    "MqttConfig",
    "QueueError",
    "SensorConfig",
    "SensorError",
    "load_edge_file",
    "parse_edge_section",
    "simulated_sensor",
]
