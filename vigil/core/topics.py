"""The MQTT topic layout of the contract (standard library only; the edge imports it).

``<root>/readings/<device>/<sensor>``   a reading from a Vigil edge agent
``<root>/status/<device>``              retained birth (online) / last will (offline)
``<root>/events/<device>/<metric>``     a normalized event, published by the bridge
``<root>/deadletter/<source>``          what the bridge refused, with the reason
``<root>/alerts/<rule>/<series>``       an alert's state change, published by the rule engine
``<root>/health/<part>/<instance>``     retained: a server part's own health (JSON), ``offline`` as its last will

Control topics (what people do to alerts, from the dashboard, the command line or any client):

``<root>/ack/<rule>/<series>``          acknowledge an alert: {"by": "...", "comment": "...", and optionally
                                        "episode": its excursion's since, "via": "link"|"dashboard"|"mqtt",
                                        "note": a corrective action}
``<root>/notes/<rule>/<series>``        a corrective-action note on an alert: {"id": "...", "by": "...",
                                        "text": "..."} (the dashboard writes, the rule engine records)
``<root>/silences/<id>``                retained: a silence {"matchers": {...}, "until": ts, "by": ...};
                                        an empty retained payload deletes it
``<root>/control/rules/reload``         ask the rule engine to reload its rules files
``<root>/calibration/<device>/<sensor>/<metric>``  retained: a series' calibration {"offset": x} or
                                        {"points": [[raw, ref], [raw, ref]]} or {"clear": true}, with
                                        "by", "at", "note" (vigil/core/calibration.py); taken by the bridge
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from vigil.core.errors import VigilError

__all__ = ["DEFAULT_ROOT", "INVISIBLE_CATEGORIES", "MAX_SEGMENT_BYTES", "TopicError", "Topics", "filter_matches",
           "invisible_character", "levels_match", "validate_segment"]

DEFAULT_ROOT = "vigil"
# Long enough for any real device id, short enough that a hostile name cannot bloat
# every stored point and every topic.
MAX_SEGMENT_BYTES = 128
_FORBIDDEN = {"+": "a '+' wildcard", "#": "a '#' wildcard", "/": "a '/'", "\x00": "a NUL character"}
# Unicode categories of characters a reader cannot see, or that change how the text around them is
# shown: control (Cc), format (Cf: bidi controls such as U+202E, zero-width U+200B-U+200D, U+2060,
# U+FEFF...), private use (Co), surrogates (Cs), line and paragraph separators (Zl, Zp). A name
# holding one can pass for another ("freezer" and "free\u200bzer") or display reversed.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})


class TopicError(VigilError, ValueError):
    """A topic or one of its segments is not allowed; ``what`` names the segment's role."""

    def __init__(self, what: str, value: str, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(f"{what} {shown!r} is not a valid topic segment: {reason}")


def invisible_character(value: str) -> Optional[str]:
    """Why ``value`` may not be a name shown to people: the first invisible or control character in it."""
    if value.isascii():
        for c in value:
            if c < "\x20" or c == "\x7f":
                return "it contains a control character"
        return None
    for c in value:
        category = unicodedata.category(c)
        if category in INVISIBLE_CATEGORIES:
            if category == "Cc":
                return f"it contains the control character U+{ord(c):04X}"
            name = unicodedata.name(c, "")
            return (f"it contains the invisible character U+{ord(c):04X}{f' ({name})' if name else ''}, which "
                    "can disguise a name; use visible characters only")
    return None


def validate_segment(value: object, what: str = "name") -> str:
    """Return ``value`` if it may stand as one topic level, else raise TopicError.

    Refused: empty, white space at either end, ``+ # /``, NUL, a leading ``$``, over MAX_SEGMENT_BYTES, and any
    character of INVISIBLE_CATEGORIES (controls, bidi and zero-width format characters, private use, surrogates,
    line and paragraph separators).
    """
    if not isinstance(value, str):
        raise TopicError(what, repr(value), f"expected a string, got {type(value).__name__}")
    if not value:
        raise TopicError(what, value, "it is empty")
    if not value.strip():
        raise TopicError(what, value, "it is blank")
    if value != value.strip():  # a tag and a name on screen that differ from what a person types
        raise TopicError(what, value, "it starts or ends with white space")
    for ch, name in _FORBIDDEN.items():
        if ch in value:
            raise TopicError(what, value, f"it contains {name}")
    if value.startswith("$"):
        raise TopicError(what, value, "a leading '$' is reserved for the broker")
    if len(value) > MAX_SEGMENT_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise TopicError(what, value, f"it is longer than {MAX_SEGMENT_BYTES} bytes")
    problem = invisible_character(value)
    if problem:
        raise TopicError(what, value, problem)
    return value


def levels_match(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """Whether an MQTT subscription filter matches a topic name, both split at '/' (a hot path splits once).

    A filter that starts with a wildcard does not match a topic that starts with '$' (MQTT 5, 4.7.2)."""
    if topic_levels and topic_levels[0][:1] == "$" and filter_levels[0][:1] != "$":
        return False
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT subscription filter matches a topic name (the one matcher: bridge, tests, bench)."""
    return levels_match(topic_filter.split("/"), topic.split("/"))


@dataclass(frozen=True)
class Topics:
    """Builds and parses the contract's topics under one root prefix (``vigil`` by default)."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        parts = self.root.split("/")
        for part in parts:
            validate_segment(part, "topic root level")

    def readings(self, device: str, sensor: str) -> str:
        return f"{self.root}/readings/{validate_segment(device, 'device')}/{validate_segment(sensor, 'sensor')}"

    def status(self, device: str) -> str:
        return f"{self.root}/status/{validate_segment(device, 'device')}"

    def events(self, device: str, metric: str) -> str:
        return f"{self.root}/events/{validate_segment(device, 'device')}/{validate_segment(metric, 'metric')}"

    def deadletter(self, source: str) -> str:
        return f"{self.root}/deadletter/{validate_segment(source, 'source')}"

    def alerts(self, rule: str, series: str) -> str:
        """``series`` is the series id (``device/sensor/metric``); its levels are validated each."""
        for level in series.split("/"):
            validate_segment(level, "series level")
        return f"{self.root}/alerts/{validate_segment(rule, 'rule')}/{series}"

    def ack(self, rule: str, series: str) -> str:
        for level in series.split("/"):
            validate_segment(level, "series level")
        return f"{self.root}/ack/{validate_segment(rule, 'rule')}/{series}"

    def notes(self, rule: str, series: str) -> str:
        for level in series.split("/"):
            validate_segment(level, "series level")
        return f"{self.root}/notes/{validate_segment(rule, 'rule')}/{series}"

    def silence(self, silence_id: str) -> str:
        return f"{self.root}/silences/{validate_segment(silence_id, 'silence id')}"

    def calibration(self, device: str, sensor: str, metric: str) -> str:
        return (f"{self.root}/calibration/{validate_segment(device, 'device')}/{validate_segment(sensor, 'sensor')}/"
                f"{validate_segment(metric, 'metric')}")

    def health(self, part: str, instance: str) -> str:
        return f"{self.root}/health/{validate_segment(part, 'part')}/{validate_segment(instance, 'instance')}"

    @property
    def rules_reload(self) -> str:
        return f"{self.root}/control/rules/reload"

    # Subscription filters.
    @property
    def all_readings(self) -> str:
        return f"{self.root}/readings/#"

    @property
    def all_status(self) -> str:
        return f"{self.root}/status/+"

    @property
    def all_events(self) -> str:
        return f"{self.root}/events/#"

    @property
    def all_alerts(self) -> str:
        return f"{self.root}/alerts/#"

    @property
    def all_health(self) -> str:
        return f"{self.root}/health/+/+"

    @property
    def all_calibration(self) -> str:
        return f"{self.root}/calibration/#"

    @property
    def all_acks(self) -> str:
        return f"{self.root}/ack/#"

    @property
    def all_notes(self) -> str:
        return f"{self.root}/notes/#"

    @property
    def all_silences(self) -> str:
        return f"{self.root}/silences/+"

    def _split(self, topic: str, kind: str, levels: int) -> Optional[list[str]]:
        prefix = f"{self.root}/{kind}/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :].split("/")
        return rest if len(rest) == levels else None

    def parse_readings(self, topic: str) -> tuple[str, str]:
        """``(device, sensor)`` of a readings topic; TopicError if it is not one or a level is bad."""
        parts = self._split(topic, "readings", 2)
        if parts is None:
            raise TopicError("topic", topic, f"expected {self.root}/readings/<device>/<sensor>")
        return validate_segment(parts[0], "device"), validate_segment(parts[1], "sensor")

    def parse_status(self, topic: str) -> str:
        parts = self._split(topic, "status", 1)
        if parts is None:
            raise TopicError("topic", topic, f"expected {self.root}/status/<device>")
        return validate_segment(parts[0], "device")

    def parse_alert_key(self, topic: str, kind: str) -> tuple[str, str]:
        """``(rule, series)`` of an alert's topic of ``kind`` (``alerts``, ``ack``, ``notes``): ``<root>/<kind>/<rule>/
        <device>/<sensor>/<metric>``; TopicError if it is not one or a level is bad."""
        parts = self._split(topic, kind, 4)
        if parts is None:
            raise TopicError("topic", topic, f"expected {self.root}/{kind}/<rule>/<device>/<sensor>/<metric>")
        validate_segment(parts[0], "rule")
        for level in parts[1:]:
            validate_segment(level, "series level")
        return parts[0], "/".join(parts[1:])

    def parse_notes(self, topic: str) -> tuple[str, str]:
        """``(rule, series)`` of a notes topic."""
        return self.parse_alert_key(topic, "notes")

    def parse_events(self, topic: str) -> tuple[str, str]:
        parts = self._split(topic, "events", 2)
        if parts is None:
            raise TopicError("topic", topic, f"expected {self.root}/events/<device>/<metric>")
        return validate_segment(parts[0], "device"), validate_segment(parts[1], "metric")
