"""The one small interface every sensor implements, and number parsing they share."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from typing import Optional

from ..errors import SensorError

__all__ = ["Sensor", "parse_number"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class Sensor(ABC):
    """Something that gives one number when asked; ``read()`` raises SensorError, never returns junk."""

    kind = "sensor"

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def read(self) -> float:
        """Take one reading now."""

    def describe(self) -> str:
        """What this sensor reads, for logs and ``--once``."""
        return self.kind


def parse_number(sensor: str, text: str, pattern: Optional[re.Pattern[str]] = None,
                 scale: float = 1.0) -> float:
    """The number in ``text`` (the first, or group 1 of ``pattern``) times ``scale``."""
    snippet = text.strip()[:80]
    if pattern is not None:
        match = pattern.search(text)
        if match is None:
            raise SensorError(sensor, "no_number", f"pattern {pattern.pattern!r} does not match {snippet!r}")
        found = match.group(1) if match.groups() else match.group(0)
    else:
        number = _NUMBER.search(text)
        if number is None:
            raise SensorError(sensor, "no_number", f"no number in {snippet!r}")
        found = number.group(0)
    try:
        value = float(found) * scale
    except ValueError as exc:
        raise SensorError(sensor, "no_number", f"{found!r} is not a number") from exc
    if not math.isfinite(value):
        raise SensorError(sensor, "not_finite", f"{found!r} is not a finite number")
    return value
