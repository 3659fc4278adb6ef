"""A number read from a file (any sysfs attribute, a file another program writes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from vigil.core.clock import Clock

from .._reader import Reader
from ..errors import SensorError
from .base import Sensor, parse_number

__all__ = ["FileSensor", "Options", "create", "parse_options", "parse_pattern"]

DEFAULT_UNIT = ""
DEFAULT_METRIC = "value"


@dataclass(frozen=True)
class Options:
    """The file, and how to find the number in it."""

    path: str
    scale: float = 1.0
    pattern: Optional[re.Pattern[str]] = None


def parse_pattern(r: Reader) -> Optional[re.Pattern[str]]:
    """An optional ``pattern``: a regular expression whose group 1 (or whole match) is the number."""
    text = r.text("pattern")
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        r.error("pattern", f"not a valid regular expression: {exc}")
        return None


def parse_options(r: Reader) -> Optional[Options]:
    path = r.text("path", required=True)
    scale = r.number("scale", 1.0)
    pattern = parse_pattern(r)
    return Options(path, 1.0 if scale is None else scale, pattern) if path else None


class FileSensor(Sensor):
    kind = "file"

    def __init__(self, name: str, options: Options) -> None:
        super().__init__(name)
        self.options = options

    def describe(self) -> str:
        return f"file {self.options.path}"

    def read(self) -> float:
        try:
            with open(self.options.path, "rb") as f:
                text = f.read(65536).decode("utf-8", "replace")
        except OSError as exc:
            raise SensorError(self.name, "io", f"cannot read {self.options.path}: {exc.strerror}") from exc
        return parse_number(self.name, text, self.options.pattern, self.options.scale)


def create(name: str, options: Options, clock: Clock) -> Sensor:
    return FileSensor(name, options)
