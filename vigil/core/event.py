"""The normalized event: what the bridge stores and publishes on ``<root>/events/<device>/<metric>``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json as _to_json

from vigil.core.errors import VigilError
from vigil.core.jsonlimits import MAX_DEPTH, too_deep
from vigil.core.topics import TopicError, invisible_character, validate_segment

__all__ = ["MAX_ABS_VALUE", "METRIC_UNITS", "Event", "EventDecodeError", "SeriesKey", "series_id"]

# The largest magnitude of a value, as sent and as stored. Far beyond any sensor; small enough that
# sums and means over millions of stored values stay finite (1e305 kW is finite, in W it is not).
MAX_ABS_VALUE = 1e18

# An event is a few hundred bytes: names of at most 128 bytes, at most 32 labels of at most 128 characters.
MAX_EVENT_BYTES = 64 * 1024

# Names and units already validated (a fleet repeats the same few thousand): checked once, not per event.
# Bounded: emptied when full, so a stream of ever new names costs what it did without it.
_VALID_NAMES: set[tuple[str, str, str]] = set()
_VISIBLE_UNITS: set[str] = set()
_VALID_MAX = 65536
_raw_decode = json.JSONDecoder().raw_decode  # json.loads' decoder, without its checks per call

# The one unit each metric is stored in (SI, or °C for temperature). The bridge converts to it.
METRIC_UNITS: dict[str, str] = {
    "temperature": "°C",
    "humidity": "%",
    "pressure": "hPa",
    "battery": "%",
    "voltage": "V",
    "current": "A",
    "power": "W",
    "energy": "kWh",
    "illuminance": "lx",
    "co2": "ppm",
    "linkquality": "lqi",
}


class EventDecodeError(VigilError):
    """An events-topic payload is not a normalized event."""


def series_id(device: str, sensor: str, metric: str) -> str:
    """``device/sensor/metric``: a series' id, the series part of an alert topic."""
    return f"{device}/{sensor}/{metric}"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One stored series: measurement ``metric`` with tags ``device`` and ``sensor``."""

    metric: str
    device: str
    sensor: str

    @property
    def id(self) -> str:
        """``device/sensor/metric``: the series part of an alert topic."""
        return series_id(self.device, self.sensor, self.metric)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalized reading. ``ts`` is the source time in epoch seconds."""

    device: str
    sensor: str
    metric: str
    value: float
    ts: float
    unit: str = ""
    seq: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    source: str = "vigil"
    received: float = field(default=0.0, compare=False)
    # The value before calibration (vigil/core/calibration.py), in the stored unit; None: not calibrated.
    raw: float | None = None

    @property
    def series(self) -> SeriesKey:
        return SeriesKey(self.metric, self.device, self.sensor)

    @property
    def series_id(self) -> str:
        """``series.id`` without building the key (the engine forms it for every event)."""
        return series_id(self.device, self.sensor, self.metric)

    @property
    def ts_us(self) -> int:
        """Source time in whole microseconds: the stored precision and the idempotency key."""
        return round(self.ts * 1_000_000)

    def label(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return default

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device": self.device,
            "sensor": self.sensor,
            "metric": self.metric,
            "value": self.value,
            "ts": self.ts,
            "unit": self.unit,
            "source": self.source,
        }
        if self.seq is not None:
            out["seq"] = self.seq
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.received:
            out["received"] = self.received
        if self.raw is not None:
            out["raw"] = self.raw
        return out

    def to_json(self) -> bytes:
        """Compact JSON, text as UTF-8: what json.dumps(ensure_ascii=False, separators=(",", ":")) writes (an
        exponent may lose its leading zero: 1e-7), in an eighth of its time (pydantic_core's encoder; docs/proof.md,
        Issue 18, The bridge)."""
        return _to_json(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        """Decode an events-topic payload; EventDecodeError says what is wrong."""
        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        if len(raw) > MAX_EVENT_BYTES:
            raise EventDecodeError(f"{len(raw)} bytes; an event is at most {MAX_EVENT_BYTES}")
        if too_deep(raw):
            raise EventDecodeError(f"nested more than {MAX_DEPTH} levels deep")
        try:
            data, end = None, -1
            if len(raw) > 1 and raw[0] == 0x7B and raw[1]:  # "{" then not NUL: UTF-8, as json.loads would detect
                text = raw.decode("utf-8", "surrogatepass")
                data, end = _raw_decode(text)
                if end != len(text):
                    data = None  # white space after it, or more: json.loads says which
            if data is None:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventDecodeError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EventDecodeError("expected a JSON object")
        try:
            value = float(data["value"])
            ts = float(data["ts"])
            labels = data.get("labels") or {}
            if not isinstance(labels, dict):
                raise EventDecodeError("labels: expected an object")
            seq = data.get("seq")
            raw_value = data.get("raw")
            event = cls(  # by position: keywords cost 0.6 µs more an event
                str(data["device"]),
                str(data["sensor"]),
                str(data["metric"]),
                value,
                ts,
                str(data.get("unit", "")),
                int(seq) if seq is not None else None,
                tuple(sorted((str(k), str(v)) for k, v in labels.items())) if labels else (),
                str(data.get("source", "vigil")),
                float(data.get("received", 0.0)),
                float(raw_value) if raw_value is not None else None,
            )
        except KeyError as exc:
            raise EventDecodeError(f"missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise EventDecodeError(str(exc)) from exc
        names = (event.device, event.sensor, event.metric)
        if names not in _VALID_NAMES:
            try:
                validate_segment(event.device, "device")
                validate_segment(event.sensor, "sensor")
                validate_segment(event.metric, "metric")
            except TopicError as exc:
                raise EventDecodeError(str(exc)) from exc
            if len(_VALID_NAMES) >= _VALID_MAX:
                _VALID_NAMES.clear()
            _VALID_NAMES.add(names)
        unit = event.unit
        if unit not in _VISIBLE_UNITS:
            if invisible_character(unit):
                raise EventDecodeError("unit and label values must be visible text")
            if len(_VISIBLE_UNITS) >= _VALID_MAX:
                _VISIBLE_UNITS.clear()
            _VISIBLE_UNITS.add(unit)
        if event.labels and any(invisible_character(v) for _, v in event.labels):
            raise EventDecodeError("unit and label values must be visible text")
        if event.raw is not None and not -MAX_ABS_VALUE <= event.raw <= MAX_ABS_VALUE:
            raise EventDecodeError(f"raw must be a finite number within ±{MAX_ABS_VALUE:g}")
        if not (-MAX_ABS_VALUE <= event.value <= MAX_ABS_VALUE and math.isfinite(event.ts)):
            raise EventDecodeError(f"value and ts must be finite numbers (value within ±{MAX_ABS_VALUE:g})")
        return event
