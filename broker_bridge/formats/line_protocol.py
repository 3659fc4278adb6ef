"""InfluxDB line protocol, one or more lines per message::

    temperature,device=freezer,sensor=probe1,room=lab value=-18.5 1700000000000000000
    climate,device=greenhouse temperature=24.1,humidity=61i

A field named ``value`` is a reading of the measurement; any other numeric field is a reading of
the metric it names. Tags ``device`` and ``sensor`` name the series (else the topic pattern and the
defaults do); other tags become labels. String and boolean fields are passed over. The
timestamp's unit is ``options.precision`` (ns by default). A bad line refuses the whole message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, Optional, Union

import pydantic

from vigil.core.refusal import Refusal

from ._base import FALLBACK_SENSOR, Options, RawReading, base_names, need_device

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["LineProtocol", "parse_line"]

_PRECISION = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
_FLOAT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INT = re.compile(r"[-+]?\d{1,20}[iu]")
_BOOL = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
_TIMESTAMP = re.compile(r"-?\d{1,20}")

Field = Union[float, int, str, bool]


def _split(text: str, sep: str, quotes: bool = False) -> list[str]:
    """Split on unescaped ``sep`` (outside double quotes when ``quotes``), keeping escapes."""
    if "\\" not in text and '"' not in text:
        return text.split(sep)  # the usual line: nothing escaped, nothing quoted
    parts = []
    start = 0
    i = 0
    n = len(text)
    quoted = False
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quotes and c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("a string field has no closing quote")
    parts.append(text[start:])
    return parts


def _first_space(line: str) -> tuple[str, Optional[str]]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            return line[:i], line[i + 1 :]
        i += 1
    return line, None


def _unescape(text: str, specials: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in specials:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _pair(text: str, what: str) -> tuple[str, str]:
    parts = _split(text, "=", quotes=what == "field")
    if len(parts) < 2 or not parts[0]:
        raise ValueError(f"{what} {text[:40]!r} is not key=value")
    return _unescape(parts[0], ",= "), "=".join(parts[1:])


def _field_value(text: str, key: str) -> Field:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise ValueError(f"field {key}: a string must be in double quotes")
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text in _BOOL:
        return text[0] in "tT"
    if _INT.fullmatch(text):
        return int(text[:-1])
    if _FLOAT.fullmatch(text):
        return float(text)
    raise ValueError(f"field {key}: {text[:40]!r} is not a number, string or boolean")


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Field], Optional[int]]:
    """``(measurement, tags, fields, timestamp)`` of one line; ValueError says what is wrong."""
    # Quotes mean strings only among the fields: in a tag they are plain characters.
    head_text, rest = _first_space(line)
    sections = [head_text, *_split(rest, " ", quotes=True)] if rest is not None else [head_text]
    if len(sections) < 2:
        raise ValueError("expected 'measurement[,tags] fields [timestamp]'")
    if len(sections) > 3:
        raise ValueError("unexpected text after the timestamp (an unescaped space?)")
    head = _split(sections[0], ",")
    measurement = _unescape(head[0], ", ")
    if not measurement:
        raise ValueError("the measurement name is empty")
    tags: dict[str, str] = {}
    for part in head[1:]:
        key, value = _pair(part, "tag")
        if not value:
            raise ValueError(f"tag {key}: empty value")
        tags[key] = _unescape(value, ",= ")
    fields: dict[str, Field] = {}
    for part in _split(sections[1], ",", quotes=True):
        key, value = _pair(part, "field")
        fields[key] = _field_value(value, key)
    timestamp = None
    if len(sections) == 3:
        if not _TIMESTAMP.fullmatch(sections[2]):
            raise ValueError(f"timestamp {sections[2][:40]!r} is not an integer")
        timestamp = int(sections[2])
    return measurement, tags, fields, timestamp


class LineProtocolOptions(Options):
    """The options of format ``line_protocol``."""

    precision: Literal["ns", "us", "ms", "s"] = pydantic.Field("ns", description="the timestamps' unit.")


class LineProtocol:
    """Readings from line protocol; a reading per numeric field."""

    name = "line_protocol"
    summary = "line protocol"
    options = LineProtocolOptions
    usual_topic = "#"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal("encoding", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        device0, sensor0, _, captured = base_names(source, fields)
        scale = _PRECISION[source.options_as(LineProtocolOptions).precision]
        out = []
        for number, line in enumerate(text.split("\n"), 1):
            line = line.strip("\r\t ")
            if not line or line.startswith("#"):
                continue
            try:
                measurement, tags, values, stamp = parse_line(line)
            except ValueError as exc:
                raise Refusal("schema", f"line {number}: {exc}") from exc
            device = tags.pop("device", device0)
            sensor = tags.pop("sensor", sensor0)
            if sensor is None:
                sensor = FALLBACK_SENSOR
            labels = captured + tuple(tags.items())
            ts = stamp * scale if stamp is not None else None
            for key, value in values.items():
                if type(value) is str or type(value) is bool:
                    continue
                metric = measurement if key == "value" else key
                out.append(RawReading(need_device(device, source), sensor, metric, value, ts, None, None, labels))
        if not out:
            raise Refusal("no_readings", "no line with a numeric field")
        return out
