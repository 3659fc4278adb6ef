"""1-wire thermometers (DS18B20 and kin) through Linux sysfs, found by their id."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from vigil.core.clock import Clock

from .._reader import Reader
from ..errors import SensorError
from .base import Sensor

__all__ = ["DEFAULT_BASE", "Options", "W1Sensor", "create", "parse_options"]

DEFAULT_BASE = "/sys/bus/w1/devices"
DEFAULT_UNIT = "°C"
DEFAULT_METRIC = "temperature"
# The DS18B20 answers 85.0 °C before its first conversion and the kernel reports -127 °C
# (or 0xFFF... as -62.5) when the wire is cut: neither is a temperature.
POWER_ON_MILLI = 85000
DISCONNECTED_MILLI = -127000
_ID = re.compile(r"^[0-9a-fA-F]{2}-[0-9a-fA-F]{12}$")
_T = re.compile(r"t=(-?\d+)\s*$")


@dataclass(frozen=True)
class Options:
    """The 1-wire id, under which sysfs directory."""

    id: str
    base: str = DEFAULT_BASE


def parse_options(r: Reader) -> Optional[Options]:
    """``id`` (e.g. 28-0316a2799fff) and optional ``base`` directory."""
    device_id = r.text("id", required=True)
    base = r.text("base", DEFAULT_BASE) or DEFAULT_BASE
    if device_id is not None and not _ID.match(device_id):
        r.error("id", f"expected a 1-wire id such as 28-0316a2799fff (family-serial), got {device_id!r}")
        return None
    return Options(device_id, base) if device_id else None


class W1Sensor(Sensor):
    """Reads ``<base>/<id>/w1_slave`` (CRC-checked) or, where the kernel has it, ``temperature``."""

    kind = "w1"

    def __init__(self, name: str, options: Options) -> None:
        super().__init__(name)
        self.options = options
        self.dir = os.path.join(options.base, options.id)

    def describe(self) -> str:
        return f"w1 {self.options.id}"

    def read(self) -> float:
        if not os.path.isdir(self.dir):
            raise SensorError(self.name, "missing", f"no 1-wire device {self.options.id} under "
                              f"{self.options.base}; {self._others()}")
        slave = os.path.join(self.dir, "w1_slave")
        if os.path.exists(slave):
            return self._check(self._parse_slave(self._read(slave)))
        plain = os.path.join(self.dir, "temperature")
        text = self._read(plain).strip()
        if not re.fullmatch(r"-?\d+", text):
            raise SensorError(self.name, "garbage", f"{plain} holds {text[:40]!r}, expected millidegrees")
        return self._check(int(text))

    def _read(self, path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read(4096).decode("ascii", "replace")
        except OSError as exc:
            raise SensorError(self.name, "io", f"cannot read {path}: {exc.strerror}") from exc

    def _parse_slave(self, text: str) -> int:
        lines = text.strip().splitlines()
        if len(lines) < 2 or "crc=" not in lines[0]:
            raise SensorError(self.name, "garbage", f"w1_slave of {self.options.id} is not in the "
                              f"kernel's format: {text.strip()[:60]!r}")
        if not lines[0].rstrip().endswith("YES"):
            raise SensorError(self.name, "crc", f"{self.options.id}: CRC check failed (NO); "
                              "check the wiring and the pull-up resistor")
        match = _T.search(lines[1])
        if match is None:
            raise SensorError(self.name, "garbage", f"w1_slave of {self.options.id} has no t= value: "
                              f"{lines[1][:60]!r}")
        return int(match.group(1))

    def _check(self, milli: int) -> float:
        if milli == POWER_ON_MILLI:
            raise SensorError(self.name, "power_on", f"{self.options.id} answered 85.0 °C, its power-on "
                              "value: no conversion happened (power or timing problem)")
        if milli == DISCONNECTED_MILLI:
            raise SensorError(self.name, "disconnected", f"{self.options.id} answered -127 °C: "
                              "the sensor is disconnected")
        return milli / 1000.0

    def _others(self) -> str:
        try:
            found = sorted(e for e in os.listdir(self.options.base) if _ID.match(e))
        except OSError:
            return f"{self.options.base} does not exist (is the w1-gpio overlay enabled?)"
        if not found:
            return "no 1-wire device is present"
        return f"present: {', '.join(found)} (a replaced sensor has a new id; put it in the config)"


def create(name: str, options: Options, clock: Clock) -> Sensor:
    return W1Sensor(name, options)
