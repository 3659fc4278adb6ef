"""Sensors, one module per kind, each behind :class:`Sensor` (``read() -> float`` or SensorError)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .base import Sensor, parse_number
from .simulated import Fault

__all__ = ["KINDS", "Fault", "Sensor", "build_sensor", "kind_module", "parse_number"]

# The kinds, each a module here with Options, parse_options(reader), create(name, options, clock),
# DEFAULT_UNIT and DEFAULT_METRIC. A kind's module is imported only when a sensor of that kind is
# configured: a device with two 1-wire thermometers does not carry the command sensor's code.
KINDS = ("w1", "thermal_zone", "command", "file", "simulated")


def kind_module(kind: str) -> ModuleType:
    """The module of sensor ``kind`` (one of KINDS), imported on first use."""
    if kind not in KINDS:
        raise KeyError(kind)
    return importlib.import_module(f"{__name__}.{kind}")


def build_sensor(kind: str, name: str, options: Any, clock: Any) -> Sensor:
    """A sensor of ``kind`` from its parsed options."""
    sensor: Sensor = kind_module(kind).create(name, options, clock)
    return sensor
