"""Sensors, one module per kind, each behind :class:`Sensor` (``read() -> float`` or SensorError)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import command, file, simulated, thermal_zone, w1
from .base import Sensor, parse_number
from .simulated import Fault

__all__ = ["KINDS", "Fault", "Sensor", "build_sensor", "parse_number"]

# kind -> module with Options, parse_options(reader), create(name, options, clock),
# DEFAULT_UNIT and DEFAULT_METRIC.
KINDS: dict[str, ModuleType] = {
    "w1": w1,
    "thermal_zone": thermal_zone,
    "command": command,
    "file": file,
    "simulated": simulated,
}


def build_sensor(kind: str, name: str, options: Any, clock: Any) -> Sensor:
    """A sensor of ``kind`` from its parsed options."""
    sensor: Sensor = KINDS[kind].create(name, options, clock)
    return sensor
