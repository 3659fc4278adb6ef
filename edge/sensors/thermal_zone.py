"""The SoC temperature from ``/sys/class/thermal/thermal_zone<N>/temp`` (millidegrees)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from vigil.core.clock import Clock

from .._reader import Reader
from ..errors import SensorError
from .base import Sensor, parse_number

__all__ = ["Options", "ThermalZoneSensor", "create", "parse_options"]

DEFAULT_BASE = "/sys/class/thermal"
DEFAULT_UNIT = "°C"
DEFAULT_METRIC = "temperature"


@dataclass(frozen=True)
class Options:
    """Which thermal zone, under which sysfs directory."""

    zone: int = 0
    base: str = DEFAULT_BASE


def parse_options(r: Reader) -> Optional[Options]:
    return Options(r.integer("zone", 0, minimum=0, maximum=1000), r.text("base", DEFAULT_BASE) or DEFAULT_BASE)


class ThermalZoneSensor(Sensor):
    kind = "thermal_zone"

    def __init__(self, name: str, options: Options) -> None:
        super().__init__(name)
        self.path = os.path.join(options.base, f"thermal_zone{options.zone}", "temp")

    def describe(self) -> str:
        return f"thermal_zone {self.path}"

    def read(self) -> float:
        try:
            with open(self.path, "rb") as f:
                text = f.read(256).decode("ascii", "replace")
        except OSError as exc:
            raise SensorError(self.name, "io", f"cannot read {self.path}: {exc.strerror}") from exc
        return parse_number(self.name, text, scale=0.001)


def create(name: str, options: Options, clock: Clock) -> Sensor:
    return ThermalZoneSensor(name, options)
