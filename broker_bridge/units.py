"""Units: spellings devices use, conversion to the one unit each metric is stored in, default ranges.

Every unit belongs to a dimension with a base unit; a value goes ``(v + offset) * mul / div`` into
the base and back out by the inverse, so °F, K, mbar, mmHg, mV, Wh... all reach the stored unit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Optional

from vigil.core.errors import VigilError

__all__ = [
    "DEFAULT_RANGES",
    "UNIT_ALIASES",
    "Converter",
    "UnitError",
    "canonical_unit",
    "converter",
    "dimension_of",
]

Converter = Callable[[float], float]


class UnitError(VigilError):
    """A value's unit cannot be converted to its metric's stored unit."""

    def __init__(self, unit: str, target: str) -> None:
        self.unit = unit
        self.target = target
        super().__init__(f"unit {unit!r} cannot be converted to {target!r}")


# unit -> (dimension, offset, mul, div); into the base unit: (v + offset) * mul / div.
_UNITS: dict[str, tuple[str, float, float, float]] = {
    "°C": ("temperature", 0.0, 1.0, 1.0),
    "°F": ("temperature", -32.0, 5.0, 9.0),
    "K": ("temperature", -273.15, 1.0, 1.0),
    "%": ("ratio", 0.0, 1.0, 1.0),
    "hPa": ("pressure", 0.0, 1.0, 1.0),
    "mbar": ("pressure", 0.0, 1.0, 1.0),
    "Pa": ("pressure", 0.0, 1.0, 100.0),
    "kPa": ("pressure", 0.0, 10.0, 1.0),
    "bar": ("pressure", 0.0, 1000.0, 1.0),
    "psi": ("pressure", 0.0, 68.947572932, 1.0),
    "mmHg": ("pressure", 0.0, 1013.25, 760.0),  # 760 mmHg is one standard atmosphere
    "inHg": ("pressure", 0.0, 33.8638866667, 1.0),
    "V": ("voltage", 0.0, 1.0, 1.0),
    "mV": ("voltage", 0.0, 1.0, 1000.0),
    "kV": ("voltage", 0.0, 1000.0, 1.0),
    "A": ("current", 0.0, 1.0, 1.0),
    "mA": ("current", 0.0, 1.0, 1000.0),
    "W": ("power", 0.0, 1.0, 1.0),
    "mW": ("power", 0.0, 1.0, 1000.0),
    "kW": ("power", 0.0, 1000.0, 1.0),
    "kWh": ("energy", 0.0, 1.0, 1.0),
    "Wh": ("energy", 0.0, 1.0, 1000.0),
    "MWh": ("energy", 0.0, 1000.0, 1.0),
    "J": ("energy", 0.0, 1.0, 3_600_000.0),
    "kJ": ("energy", 0.0, 1.0, 3_600.0),
    "lx": ("illuminance", 0.0, 1.0, 1.0),
    "ppm": ("concentration", 0.0, 1.0, 1.0),
    "ppb": ("concentration", 0.0, 1.0, 1000.0),
    "lqi": ("linkquality", 0.0, 1.0, 1.0),
}

# Other spellings seen on devices (Tasmota's TempUnit "C", zigbee2mqtt's "lux", ...).
UNIT_ALIASES: dict[str, str] = {
    "C": "°C", "c": "°C", "degC": "°C", "celsius": "°C", "Celsius": "°C", "℃": "°C", "°c": "°C", "ºC": "°C",
    "F": "°F", "f": "°F", "degF": "°F", "fahrenheit": "°F", "Fahrenheit": "°F", "℉": "°F", "ºF": "°F",
    "kelvin": "K", "Kelvin": "K",
    "%RH": "%", "RH": "%", "percent": "%", "pct": "%",
    "hpa": "hPa", "HPa": "hPa", "mb": "mbar",
    "lux": "lx", "Lux": "lx",
    "v": "V", "a": "A", "w": "W", "kwh": "kWh", "KWh": "kWh", "wh": "Wh",
}

# Plausible values per metric, in the stored unit: values outside are refused (configurable).
DEFAULT_RANGES: dict[str, tuple[Optional[float], Optional[float]]] = {
    "temperature": (-100.0, 300.0),
    "humidity": (0.0, 100.0),
    "battery": (0.0, 100.0),
    "pressure": (0.0, None),
    "linkquality": (0.0, 255.0),
    "co2": (0.0, 100_000.0),
    "illuminance": (0.0, 200_000.0),
    "energy": (0.0, None),
}


def canonical_unit(unit: str) -> str:
    """The usual spelling of ``unit`` (``C`` -> ``°C``); unknown units are returned as they are."""
    return UNIT_ALIASES.get(unit, unit)


def dimension_of(unit: str) -> Optional[str]:
    """The dimension of a known unit (``temperature`` for ``°F``), else None."""
    entry = _UNITS.get(canonical_unit(unit))
    return entry[0] if entry else None


def _identity(value: float) -> float:
    return value


@lru_cache(maxsize=4096)
def converter(unit: str, target: str) -> Converter:
    """A function taking a value in ``unit`` to ``target``; UnitError when they do not convert."""
    unit, target = canonical_unit(unit), canonical_unit(target)
    if unit == target:
        return _identity
    src, dst = _UNITS.get(unit), _UNITS.get(target)
    if src is None or dst is None or src[0] != dst[0]:
        raise UnitError(unit, target)
    _, off_s, mul_s, div_s = src
    _, off_d, mul_d, div_d = dst
    if off_d == 0.0 and mul_d == 1.0 and div_d == 1.0:
        if off_s == 0.0:
            return lambda v: v * mul_s / div_s
        return lambda v: (v + off_s) * mul_s / div_s
    return lambda v: (v + off_s) * mul_s / div_s * div_d / mul_d - off_d
