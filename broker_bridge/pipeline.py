"""One MQTT message in, normalized events and dead letters out: routing, size bound, format,
normalization (with the calibrations in force), deduplication and counting. Pure code, no I/O;
the bridge's runtime (and the dashboard's HTTP ingest) call ``Pipeline.process`` for every message.

Every message ends as events, duplicates, passed over (a frame with no reading, such as a
Shelly button event) or dead letters with a reason; ``process`` never raises.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from vigil.core.calibration import Correction
from vigil.core.event import Event
from vigil.core.refusal import Refusal
from vigil.core.topics import Topics, levels_match

from .dedup import Deduplicator
from .formats import FORMATS, Format
from .normalize import Normalizer, SourceRules
from .settings import BridgeSettings, SourceSettings
from .topic_pattern import TopicPattern

__all__ = ["UNROUTED_SOURCE", "DeadLetter", "Outcome", "Pipeline"]

log = logging.getLogger(__name__)

# The dead-letter source of a message that no source's filter takes.
UNROUTED_SOURCE = "unrouted"
_DETAIL_CHARS = 500
_TOPIC_CHARS = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message (or one refused reading of it), for ``<root>/deadletter/<source>``.

    ``message_topic`` is the topic the message came on (``"topic"`` in the JSON); ``topic(topics)``
    is where the dead letter goes.
    """

    source: str
    reason: str
    detail: str
    message_topic: str
    payload: bytes
    received: float = 0.0
    payload_bound: int = field(default=4096, compare=False)

    def topic(self, topics: Topics) -> str:
        """``<root>/deadletter/<source>``."""
        return topics.deadletter(self.source)

    @classmethod
    def for_event(cls, event: Event, reason: str, detail: str, topic: str = "") -> DeadLetter:
        """A dead letter for an event refused after normalization (say, by the store)."""
        return cls(event.source, reason, detail, topic, event.to_json(), event.received)

    def to_dict(self) -> dict[str, Any]:
        head = self.payload[: self.payload_bound]
        truncated = len(self.payload) > len(head)
        text: Optional[str]
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A cut through a multi-byte character is still text; anything else is binary.
            text = None
            if truncated and exc.reason == "unexpected end of data":
                try:
                    text = head[: exc.start].decode("utf-8")
                except UnicodeDecodeError:
                    text = None
        topic = self.message_topic
        if len(topic) > _TOPIC_CHARS:
            topic = topic[:_TOPIC_CHARS] + "..."
        return {
            "source": self.source,
            "reason": self.reason,
            "detail": self.detail[:_DETAIL_CHARS],
            "topic": topic,
            "payload": text if text is not None else base64.b64encode(head).decode("ascii"),
            "encoding": "utf-8" if text is not None else "base64",
            "truncated": truncated,
            "size": len(self.payload),
            "received": self.received,
        }

    def to_json(self) -> bytes:
        data = self.to_dict()
        try:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape in a detail: escaped, never lost
            return json.dumps(data, separators=(",", ":")).encode("ascii")


@dataclass(slots=True)
class Outcome:
    """What became of one message."""

    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class _Route:
    settings: SourceSettings
    rules: SourceRules
    format: Format
    pattern: TopicPattern
    filter: str
    levels: tuple[str, ...]

    def takes(self, parts: list[str]) -> bool:
        """Whether the split topic ``parts`` fits this route's subscription filter."""
        return levels_match(self.levels, parts)


class Pipeline:
    """Routes a message to its source, parses, normalizes and deduplicates it.

    Not thread-safe (its dedup memory is a plain object): one per consumer loop.
    """

    def __init__(self, settings: BridgeSettings, topics: Topics,
                 calibrations: Optional[dict[tuple[str, str, str], Correction]] = None) -> None:
        self.settings = settings
        self.topics = topics
        self._routes = [
            _Route(
                s, SourceRules.of(s), FORMATS[s.format], s.pattern(topics.root), s.subscription(topics.root),
                tuple(s.subscription(topics.root).split("/")),
            )
            for s in settings.all_sources(topics.root)
        ]
        self._readings_prefix = f"{topics.root}/readings/"
        self._normalizer = Normalizer(settings, calibrations)
        self._dedup = Deduplicator(settings.dedup_series, settings.dedup_per_series)
        self._max_payload = settings.max_payload_bytes
        self._bound = settings.deadletter_payload_bytes
        self._said: set[tuple[str, str]] = set()

    @classmethod
    def for_format(cls, settings: BridgeSettings, topics: Topics, fmt: str) -> Pipeline:
        """A pipeline of only the sources of format ``fmt`` (the HTTP ingest's ``format=``).

        With none configured, one on the format's usual topic (``tele/{device}/SENSOR``...).
        ValueError names the formats when ``fmt`` is not one.
        """
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; one of {', '.join(sorted(FORMATS))}")
        sources = [s for s in settings.sources if s.format == fmt]
        usual = FORMATS[fmt].usual_topic
        if not sources and usual:
            sources = [SourceSettings(name=fmt, format=fmt, topic=usual)]
        elif not sources and fmt != "vigil_json":
            raise ValueError(f"format {fmt} needs a source in bridge.sources (its options say where values are)")
        return cls(settings.model_copy(update={"sources": sources}), topics)

    @property
    def corrected_ts(self) -> int:
        """Readings stored at receive time because their source time was implausible."""
        return self._normalizer.corrected_ts

    def forget(self, events: list[Event]) -> None:
        """Forget these events in the duplicate memory (their batch was not acknowledged)."""
        for event in events:
            self._dedup.forget(event)

    def subscriptions(self) -> list[tuple[str, int]]:
        """The MQTT filters to subscribe to, with their QoS (without any ``$share/`` prefix)."""
        return [(r.filter, r.settings.qos) for r in self._routes]

    def _route(self, topic: str) -> Optional[_Route]:
        if topic.startswith(self._readings_prefix):
            return self._routes[0]
        if topic.startswith("$"):  # broker topics match no wildcard filter
            return None
        parts = topic.split("/")
        for route in self._routes[1:]:
            if route.takes(parts):
                return route
        return None

    def _dead(self, out: Outcome, source: str, reason: str, detail: str, topic: str, payload: bytes,
              received: float) -> None:
        out.dead.append(DeadLetter(source, reason, detail, topic, payload, received, self._bound))

    def refuse(self, topic: str, payload: bytes, received: float, reason: str, detail: str) -> Outcome:
        """A whole message refused by the runtime (poison, an unforeseen failure): its dead letter."""
        out = Outcome()
        route = self._route(topic)
        self._dead(out, route.rules.name if route else UNROUTED_SOURCE, reason, detail, topic, payload, received)
        return out

    def first_time(self, where: str, what: str) -> bool:
        """Whether (``where``, ``what``) is new: a failure is logged once per topic or source and kind."""
        key = (where[:200], what)
        if key in self._said or len(self._said) >= 10_000:
            return False
        self._said.add(key)
        return True

    def process(self, topic: str, payload: bytes, received: float, retained: bool = False) -> Outcome:
        """Events, dead letters and the duplicate count of one message; never raises."""
        out = Outcome()
        route = self._route(topic)
        if route is None:
            self._dead(out, UNROUTED_SOURCE, "topic", "no source of the bridge takes this topic", topic,
                       payload, received)
            return out
        name = route.rules.name
        if len(payload) > self._max_payload:
            self._dead(out, name, "too_large", f"payload of {len(payload)} bytes is over the bound of "
                       f"{self._max_payload} (bridge.max_payload_bytes)", topic, payload, received)
            return out
        fields = route.pattern.match(topic)
        if fields is None:
            self._dead(out, name, "topic", f"topic does not fit the pattern {route.pattern.text}", topic,
                       payload, received)
            return out
        try:
            raws = route.format.parse(topic, payload, route.settings, fields)
        except Refusal as exc:
            self._dead(out, name, exc.reason, exc.detail, topic, payload, received)
            return out
        except Exception as exc:  # a parser bug must cost one message, not the bridge
            if self.first_time(name, f"format {type(exc).__name__}"):
                log.exception("format %s failed on a message from %s (dead-lettered, reason internal; said once "
                              "per source and kind)", route.settings.format, name)
            self._dead(out, name, "internal", f"{type(exc).__name__} in format {route.settings.format}",
                       topic, payload, received)
            return out
        if not raws:
            return out
        for raw in raws:
            try:
                event, from_source = self._normalizer.normalize(raw, route.rules, received)
            except Refusal as exc:
                detail = exc.detail
                if len(raws) > 1:  # say which of the message's readings it was
                    detail = f"{ascii(str(raw.sensor)[:40])[1:-1]}/{ascii(str(raw.metric)[:40])[1:-1]}: {detail}"
                self._dead(out, name, exc.reason, detail, topic, payload, received)
                continue
            except Exception as exc:
                if self.first_time(name, f"normalize {type(exc).__name__}"):
                    log.exception("normalizing a reading from %s failed (dead-lettered, reason internal; said once "
                                  "per source and kind)", name)
                self._dead(out, name, "internal", f"{type(exc).__name__} in normalization", topic, payload,
                           received)
                continue
            if self._dedup.seen(event, from_source, retained):
                out.duplicates += 1
                continue
            out.events.append(event)
        return out
