"""Names into InfluxDB line protocol and InfluxQL, safely and reversibly.

Line protocol cannot carry a newline in a tag value at all, and a trailing backslash
escapes the next separator. So before the usual escaping, ``%``, ``\\`` and control
characters are percent-encoded (``x\\ny`` is stored as ``x%0Ay``, a ``%`` as ``%25``); the
stores decode them on the way out. Ordinary names (letters, digits, ``-``, ``_``, ``.``,
spaces, commas, quotes, unicode) are stored as they are, so Grafana users query them plainly.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

from vigil.core.event import Event

__all__ = ["decode_name", "encode_name", "line", "lines", "quote_ident", "quote_literal"]

_NEEDS_PERCENT = re.compile(r"[%\\\x00-\x1f\x7f]")
_PERCENT = re.compile(r"%([0-9A-F]{2})")
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def encode_name(name: str) -> str:
    """Percent-encode what line protocol cannot carry safely; identity for ordinary names."""
    if not _NEEDS_PERCENT.search(name):
        return name
    return _NEEDS_PERCENT.sub(lambda m: f"%{ord(m.group()):02X}", name)


def decode_name(stored: str) -> str:
    """The inverse of :func:`encode_name`."""
    if "%" not in stored:
        return stored
    return _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), stored)


@functools.lru_cache(maxsize=50_000)  # a few MB at most
def _series_text(metric: str, device: str, sensor: str, labels: tuple[tuple[str, str], ...]) -> str:
    """The measurement and tags of a series, as line protocol writes them: the same for each of its readings."""
    tags = sorted([("device", device), ("sensor", sensor), *labels])
    tag_text = ",".join(
        f"{encode_name(k).translate(_TAG_ESCAPES)}={encode_name(v).translate(_TAG_ESCAPES)}" for k, v in tags if v
    )
    return f"{encode_name(metric).translate(_MEASUREMENT_ESCAPES)},{tag_text}"


def line(event: Event) -> str:
    """One event as a line of line protocol with microsecond precision."""
    value = float(event.value)
    if not math.isfinite(value):
        raise ValueError(f"value of {event.series.id} is not a finite number: {value!r}")
    fields = f"value={value!r}" if event.raw is None else f"value={value!r},raw={float(event.raw)!r}"
    return f"{_series_text(event.metric, event.device, event.sensor, event.labels)} {fields} {event.ts_us}"


def lines(events: Iterable[Event]) -> str:
    return "\n".join(line(e) for e in events)


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes (the stored, encoded form)."""
    return '"' + encode_name(name).replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal in single quotes (the stored, encoded form)."""
    return "'" + encode_name(value).replace("'", "\\'") + "'"
