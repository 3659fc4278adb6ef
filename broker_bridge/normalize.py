"""From a format's RawReading to a stored Event: names checked, unit converted, labels added,
sensor error values and implausible values and times refused.

Refusal reasons added here (besides the formats' own)::

    name         a device, sensor, metric or label name that cannot be a topic level or a tag
    value        the value is not a finite number, or its magnitude is over MAX_ABS_VALUE (checked
                 as sent and again after unit conversion: 1e305 kW is finite, in W it is not)
    unit         the unit does not convert to the metric's stored unit
    error_value  a value the source's sensor sends on failure (DS18B20: 85 °C, -127 °C)
    range        a value outside the metric's plausible range (after calibration)
    ts_future    source time too far ahead of the receive time
    ts_past      source time too far behind it
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

from vigil.core.calibration import Correction
from vigil.core.event import MAX_ABS_VALUE, Event
from vigil.core.refusal import Refusal
from vigil.core.topics import TopicError, invisible_character, validate_segment

from .formats import RawReading
from .settings import BridgeSettings, SourceSettings
from .units import UnitError, canonical_unit, converter

__all__ = ["Normalizer", "SourceRules"]

log = logging.getLogger(__name__)

_METRIC = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_RESERVED = frozenset({"device", "sensor", "metric", "value", "time", "_field", "_measurement"})
_NAME_CACHE_MAX = 100_000
# Equal within this, a value is the configured error value (unit conversions round).
_ERROR_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class SourceRules:
    """What normalization needs of one source, prepared once."""

    name: str
    labels: tuple[tuple[str, str], ...]
    error_values: dict[str, tuple[float, ...]]
    unit: Optional[str]

    @classmethod
    def of(cls, source: SourceSettings) -> SourceRules:
        return cls(
            name=source.name,
            labels=tuple(source.labels.items()),
            error_values={m: tuple(float(v) for v in vs) for m, vs in source.error_values.items() if vs},
            unit=source.defaults.unit,
        )


def _name_problem(value: str) -> Optional[str]:
    if not value.strip():
        return "it is blank"
    if value != value.strip():
        return "it starts or ends with white space"
    problem = invisible_character(value)
    if problem:
        return problem
    if not value.isascii():
        for ch in value:
            if unicodedata.category(ch) == "Cn":
                return f"it contains the unassigned character U+{ord(ch):04X}"
    return None


class Normalizer:
    """Turns RawReadings into Events by the bridge's settings; raises Refusal."""

    def __init__(self, settings: BridgeSettings,
                 calibrations: Optional[dict[tuple[str, str, str], Correction]] = None) -> None:
        # The corrections in force by (device, sensor, metric), changed in place by broker_bridge/calibration.py.
        self._calibrations = calibrations if calibrations is not None else {}
        self._units = dict(settings.units)
        self._ranges = {
            m: (-math.inf if r.min is None else r.min, math.inf if r.max is None else r.max)
            for m, r in settings.ranges.items()
        }
        self._aliases = dict(settings.metric_aliases)
        self._device_labels = {d: tuple(ls.items()) for d, ls in settings.device_labels.items()}
        self._max_future = settings.max_future
        self._max_age = settings.max_age
        self._replace_ts = settings.implausible_ts == "receive_time"
        # Readings stored at receive time because their source time was implausible, and the
        # devices already named in the log for it (once each: a wrong clock stays wrong).
        self.corrected_ts = 0
        self._corrected_devices: set[str] = set()
        self._names: set[str] = set()
        self._metrics: dict[str, str] = {}

    def name(self, value: object, what: str) -> str:
        """``value`` if it may be a device or sensor name (a topic level and a tag), else Refusal."""
        if type(value) is str and value in self._names:
            return value
        try:
            validate_segment(value, what)
        except TopicError as exc:
            raise Refusal("name", str(exc)) from None
        assert isinstance(value, str)
        problem = _name_problem(value)
        if problem:
            raise Refusal("name", f"{what} {_shown(value)} is not allowed: {problem}")
        if len(self._names) >= _NAME_CACHE_MAX:
            self._names.clear()
        self._names.add(value)
        return value

    def metric(self, value: object) -> str:
        """The stored metric name: lower case, aliases resolved (``temp`` -> ``temperature``)."""
        if type(value) is str:
            known = self._metrics.get(value)
            if known is not None:
                return known
            lowered = value.lower()
            metric = self._aliases.get(lowered, lowered)
            if _METRIC.fullmatch(metric):
                if len(self._metrics) >= _NAME_CACHE_MAX:
                    self._metrics.clear()
                self._metrics[value] = metric
                return metric
        raise Refusal("name", f"metric {_shown(value)}: expected letters, digits and _ (at most 64)")

    def labels(
        self, raw: tuple[tuple[str, str], ...], rules: SourceRules, device: str
    ) -> tuple[tuple[str, str], ...]:
        """Payload and topic labels, then the source's, then the device's: later ones win."""
        by_device = self._device_labels.get(device, ())
        if not raw and not rules.labels and not by_device:
            return ()
        merged: dict[str, str] = {}
        for key, value in raw:
            if not _LABEL.fullmatch(key) or key in _RESERVED:
                raise Refusal("name", f"label {_shown(key)}: expected letters, digits and _, not a reserved name")
            if type(value) is not str or len(value) > 128:
                raise Refusal("name", f"label {key}: value {_shown(value)} is not a string of at most 128 characters")
            problem = _name_problem(value)
            if problem:
                raise Refusal("name", f"label {key}: value {_shown(value)} is not allowed: {problem}")
            merged[key] = value
        merged.update(rules.labels)
        merged.update(by_device)
        if len(merged) > 32:
            raise Refusal("name", f"{len(merged)} labels; at most 32")
        return tuple(sorted(merged.items()))

    def _corrected(self, device: str, how: str) -> None:
        self.corrected_ts += 1
        if device not in self._corrected_devices and len(self._corrected_devices) < 10_000:
            self._corrected_devices.add(device)
            log.warning("device %s: source time %s receive time; storing its readings at receive time "
                        "(bridge.implausible_ts: receive_time). Check the device's clock.", device, how)

    def normalize(self, raw: RawReading, rules: SourceRules, received: float) -> tuple[Event, bool]:
        """The normalized Event and whether its time is the source's (else the receive time)."""
        device = self.name(raw.device, "device")
        sensor = self.name(raw.sensor, "sensor")
        metric = self.metric(raw.metric)
        sent = raw.value
        kind = type(sent)
        if kind is int:
            try:
                value = float(sent)  # type: ignore[arg-type]
            except OverflowError:
                raise Refusal("value", f"{metric}: {str(sent)[:20]}... is too large") from None
        elif kind is float:
            value = sent  # type: ignore[assignment]
        else:
            raise Refusal("value", f"{metric}: expected a number, got {_shown(sent)}")
        if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN fails this too
            raise Refusal("value", _out_of_bounds(metric, value, raw.unit or rules.unit))
        stored_unit = self._units.get(metric)
        unit = raw.unit or rules.unit
        if stored_unit is not None:
            if unit and unit != stored_unit:
                try:
                    value = converter(unit, stored_unit)(value)
                except UnitError:
                    raise Refusal(
                        "unit", f"{metric}: unit {_shown(unit)} does not convert to {stored_unit!r}"
                    ) from None
                except OverflowError:
                    value = math.inf
                # Finite as sent is not finite as stored: 1e305 kW is inf W. Checked after every conversion.
                if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                    raise Refusal("value", _out_of_bounds(metric, sent, unit, value, stored_unit))
            unit = stored_unit
        else:
            unit = canonical_unit(unit) if unit else ""
            if len(unit) > 16 or invisible_character(unit):
                raise Refusal("unit", f"{metric}: unit {_shown(unit)} is not a unit")
        errors = rules.error_values.get(metric)
        if errors:
            for bad in errors:
                if abs(value - bad) <= _ERROR_TOLERANCE:
                    raise Refusal(
                        "error_value",
                        f"{metric} {value:g} {unit} is an error value of the sensors of source {rules.name!r}",
                    )
        raw_value = None
        if self._calibrations:
            correction = self._calibrations.get((device, sensor, metric))
            if correction is not None:
                raw_value, value = value, correction.apply(value)
                if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                    raise Refusal("value", f"{metric}: {raw_value!r} {unit} is {value!r} once calibrated "
                                  f"({correction.describe()}): not a finite number within ±{MAX_ABS_VALUE:g}")
        bounds = self._ranges.get(metric)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise Refusal("range", f"{metric} {value:g} {unit} is outside {bounds[0]:g}..{bounds[1]:g}")
        ts = raw.ts
        from_source = ts is not None
        if ts is None:
            ts = received
        elif not math.isfinite(ts):  # NaN would pass every comparison below
            raise Refusal("ts", f"source time {ts!r} is not a finite number")
        elif ts > received + self._max_future:
            if not self._replace_ts:
                raise Refusal("ts_future", f"source time {ts:.3f} is {ts - received:.0f} s ahead of receive time")
            self._corrected(device, f"{ts - received:.0f} s ahead of")
            ts, from_source = received, False
        elif ts < received - self._max_age:
            if not self._replace_ts:
                raise Refusal("ts_past", f"source time {ts:.3f} is {received - ts:.0f} s before receive time")
            self._corrected(device, f"{received - ts:.0f} s behind")
            ts, from_source = received, False
        event = Event(
            device,
            sensor,
            metric,
            value,
            ts,
            unit,
            raw.seq,
            self.labels(raw.labels, rules, device),
            rules.name,
            received,
            raw_value,
        )
        return event, from_source


def _out_of_bounds(metric: str, sent: object, unit: object, converted: object = None, stored: str = "") -> str:
    """The detail of a value refused for its magnitude, as sent and (if converted) as it would be stored."""
    text = f"{metric}: {_shown(sent)} {unit or ''}".rstrip()
    if converted is not None:
        text += f" is {converted!r} {stored}"
    return f"{text}: not a finite number within ±{MAX_ABS_VALUE:g}; check the device's value and unit"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
