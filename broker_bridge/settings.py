"""The ``bridge:`` section of vigil.yaml: the runtime knobs, the sources and the normalization rules.

A *source* names a format and the topic pattern its messages arrive on::

    bridge:
      sources:
        - name: shelly
          format: plain
          topic: shellies/{device}/ext_temperature/{sensor}
          defaults: {metric: temperature, unit: °C}
          error_values: {temperature: [85, -127]}     # DS18B20 power-on and disconnected
      device_labels:
        freezer-1: {site: lab, room: cold-store}

The built-in source ``vigil`` (Vigil's own JSON on ``<root>/readings/{device}/{sensor}``) is always
there; a source named ``vigil`` in the list replaces its settings (labels, error values).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from vigil.core.calibration import CalibrationError, Correction, parse_correction, parse_series
from vigil.core.configtypes import STRICT, Duration, HostPort, Linger, TopicName
from vigil.core.event import METRIC_UNITS

from .formats import FORMATS, Format
from .formats._base import MetricName, Options, metric_name
from .topic_pattern import PatternError, TopicPattern, filters_overlap
from .units import DEFAULT_RANGES, UNIT_ALIASES, dimension_of

__all__ = [
    "BUILTIN_SOURCE",
    "BridgeSettings",
    "FormatOptions",
    "SourceDefaults",
    "SourceSettings",
    "ValueRange",
]

BUILTIN_SOURCE = "vigil"
log = logging.getLogger(__name__)
_O = TypeVar("_O", bound=Options)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_RESERVED_LABELS = frozenset({"device", "sensor", "metric", "value", "time", "_field", "_measurement"})
# Metrics the formats produce beyond vigil.core.event.METRIC_UNITS, stored in one unit too.
_MORE_UNITS = {"dew_point": "°C", "device_temperature": "°C", "soil_moisture": "%"}
_DEFAULT_ALIASES = {
    "temp": "temperature",
    "hum": "humidity",
    "rh": "humidity",
    "press": "pressure",
    "lux": "illuminance",
    "illuminance_lux": "illuminance",
    "carbon_dioxide": "co2",
    "batt": "battery",
    "link_quality": "linkquality",
}


def _label_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"label name {value!r} must be a letter or _ then letters, digits or _ (at most 64)")
    if value in _RESERVED_LABELS:
        raise ValueError(f"{value!r} cannot be a label: it is a column of every stored point")
    return value


def _label_value(value: str) -> str:
    if not value.strip() or len(value) > 128 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a label value is 1-128 printable characters")
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]
Labels = dict[LabelName, Annotated[str, AfterValidator(_label_value)]]


class SourceDefaults(BaseModel):
    """What a reading gets when neither the topic nor the payload says."""

    model_config = STRICT

    device: Optional[TopicName] = Field(None, description="The device when the topic has no `{device}`.")
    sensor: Optional[TopicName] = Field(
        None, description="The sensor when neither the topic nor the payload names one (else `main`)."
    )
    metric: Optional[MetricName] = Field(
        None, description="The metric when neither the topic nor the payload names one (else `temperature`)."
    )
    unit: Optional[str] = Field(
        None, max_length=16, description="The unit of values that come without one (else the metric's stored unit)."
    )

    @model_validator(mode="after")
    def _unit_fits(self) -> SourceDefaults:
        # Without a metric here the topic may name it ({metric}): checked per reading then.
        stored = METRIC_UNITS.get(self.metric) if self.metric else None
        if self.unit and stored and dimension_of(self.unit) != dimension_of(stored):
            raise ValueError(f"unit {self.unit!r} is not a unit of {self.metric} (such as {stored!r})")
        return self


def _every_option(formats: Iterable[Format]) -> type[Options]:
    """One model of the options of every format, for ``options:``: what the configuration reference lists
    and ``vigil config check`` prints. Its fields are the formats' own (with their checks), each described
    with the names of the formats that take it; an option two formats share is the same in both.
    ``SourceSettings`` then checks a source's options against its format's own model."""
    formats = list(formats)
    fields: dict[str, FieldInfo] = {}
    # the format with the most options first, as the reference has always listed them
    for fmt in sorted(formats, key=lambda f: -len(f.options.model_fields)):
        for name, field in fmt.options.model_fields.items():
            if repr(fields.setdefault(name, field)) != repr(field):
                raise TypeError(f"option {name} of format {fmt.name} differs from the same option of another format")
    described = {
        name: (field.annotation, FieldInfo.merge_field_infos(field, description=", ".join(
            f.name for f in formats if name in f.options.model_fields) + f": {field.description}"))
        for name, field in fields.items()
    }
    merged: type[Options] = create_model(  # type: ignore[call-overload]
        "FormatOptions", __base__=Options, __doc__="Options of the source's format; each format takes only its own.",
        **described)
    return merged


if TYPE_CHECKING:
    FormatName = str
    FormatOptions = Options
else:
    FormatName = Literal[tuple(FORMATS)]
    FormatOptions = _every_option(FORMATS.values())


class SourceSettings(BaseModel):
    """One kind of device messages: a format and the topic pattern they arrive on."""

    model_config = STRICT

    name: TopicName = Field(description="The source's name: its dead letters go to `<root>/deadletter/<name>`.")
    format: FormatName = (
        Field(description="How its payloads are read: " + ", ".join(f.summary for f in FORMATS.values()) + ".")
    )
    topic: Optional[str] = Field(
        None, description="Topic pattern such as `shellies/{device}/ext_temperature/{sensor}`: `{device}`, "
        "`{sensor}`, `{metric}` or a label name take one level; `+` and a last `#` match without taking.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of the subscription.")
    defaults: SourceDefaults = Field(default_factory=SourceDefaults)
    labels: Labels = Field(default_factory=dict, description="Labels added to every reading of this source.")
    options: FormatOptions = Field(default_factory=FormatOptions)
    _options: Options = PrivateAttr(default_factory=Options)  # the same, as the format's own model
    error_values: dict[MetricName, list[float]] = Field(
        default_factory=dict, description="Values the sensors send on failure, refused, per metric in its stored "
        "unit: `{temperature: [85, -127]}` for DS18B20 (power-on, disconnected).",
    )

    @field_validator("topic")
    @classmethod
    def _pattern(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            try:
                TopicPattern(v)
            except PatternError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SourceSettings:
        if self.topic is None and self.name != BUILTIN_SOURCE:
            raise ValueError(f"source {self.name!r}: topic is required (a pattern such as tele/{{device}}/SENSOR)")
        if self.name == BUILTIN_SOURCE and (self.format != "vigil_json" or self.topic is not None):
            raise ValueError(
                f"the source named {BUILTIN_SOURCE!r} is Vigil's own: its format is vigil_json and its topic "
                "is <root>/readings/{device}/{sensor}; set only labels, defaults or error_values"
            )
        model = FORMATS[self.format].options
        given = self.options.model_fields_set
        wrong = sorted(k for k in given if k not in model.model_fields)
        if wrong:
            might = ", ".join(sorted(model.model_fields)) or "none"
            raise ValueError(f"option {', '.join(wrong)} does not apply to format {self.format} (it takes: {might})")
        try:  # each option is checked already: what is left is the format's check of them together
            self._options = model.model_validate({k: getattr(self.options, k) for k in given})
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    def options_as(self, model: type[_O]) -> _O:
        """The options as the model of this source's format (the format's parser asks for its own)."""
        if not isinstance(self._options, model):
            raise TypeError(f"source {self.name!r} is of format {self.format}: its options are no {model.__name__}")
        return self._options

    def pattern(self, root: str) -> TopicPattern:
        """The compiled topic pattern (the built-in source's is under ``root``)."""
        return TopicPattern(self.topic or f"{root}/readings/{{device}}/{{sensor}}")

    def subscription(self, root: str) -> str:
        """The MQTT filter: the pattern's, but all of ``<root>/readings/#`` for the built-in source,
        so that a readings topic with the wrong number of levels is dead-lettered, not ignored."""
        return f"{root}/readings/#" if self.topic is None else self.pattern(root).filter


def _series_id(value: str) -> str:
    try:
        parse_series(value)
    except CalibrationError as exc:
        raise ValueError(str(exc)) from None
    return value


SeriesId = Annotated[str, AfterValidator(_series_id)]


class CalibrationSpec(BaseModel):
    """One series' calibration in vigil.yaml: an offset, or two points [raw, reference] (vigil/core/calibration.py)."""

    model_config = STRICT

    offset: Optional[float] = Field(None, description="Added to the raw value.")
    points: Optional[list[list[float]]] = Field(None, description="[[raw1, reference1], [raw2, reference2]].")

    @model_validator(mode="after")
    def _valid(self) -> CalibrationSpec:
        try:
            self.correction()
        except CalibrationError as exc:
            raise ValueError(str(exc)) from None
        return self

    def correction(self) -> Correction:
        return parse_correction(self.model_dump(exclude_none=True))


class ValueRange(BaseModel):
    """The plausible values of a metric, in its stored unit; either bound may be left open."""

    model_config = STRICT

    min: Optional[float] = Field(None, description="Lowest plausible value (none: open).")
    max: Optional[float] = Field(None, description="Highest plausible value (none: open).")

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is not None and self.max is not None and not self.min <= self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        return self


class BridgeSettings(BaseModel):
    model_config = STRICT

    client_id: str = "vigil-bridge"
    shared_group: Optional[str] = None
    batch_size: int = Field(500, ge=1, le=50_000)
    batch_linger: Linger = Field(
        0.02,
        description="While readings stream in, a batch waits until its first reading has waited this long, so that "
        "more share one store write, one round trip to the broker and one wake-up of the process (at 1,000 "
        "readings/s, 20 ms costs about a fifth less CPU than 10 ms and adds about 5 ms to a reading); a reading "
        "after a quiet spell is taken at once. 0 turns it off. See docs/proof.md, Issue 18, The lingers.",
    )
    spool_max_events: int = Field(
        1_000_000, ge=1, le=1_000_000_000,
        description="Events the disk spool holds while the store is down; past it the oldest are dropped "
        "and counted (vigil_bridge_spool_dropped_total).",
    )
    spool_path: Optional[str] = Field(
        None, description="The spool's SQLite file (default: <data_dir>/bridge-spool.db)."
    )
    max_payload_bytes: int = Field(65_536, ge=64, le=16 * 1024 * 1024)
    metrics_listen: Optional[HostPort] = None

    sources: list[SourceSettings] = Field(
        default_factory=list, description="Device formats on their own topics, besides Vigil's own readings."
    )
    device_labels: dict[str, Labels] = Field(
        default_factory=dict, description="Labels per device: `{freezer-1: {site: lab, room: cold-store}}`."
    )
    units: dict[str, str] = Field(
        default_factory=dict, description="The unit a metric is stored in, over the built-in ones (°C, %, hPa, V, "
        "A, W, kWh, lx, ppm); values are converted to it.",
    )
    ranges: dict[MetricName, ValueRange] = Field(
        default_factory=dict, description="Plausible values per metric, over the built-in ones (temperature "
        "-100..300, humidity and battery 0..100, ...); others are refused.",
    )
    metric_aliases: dict[str, str] = Field(
        default_factory=dict, description="Metric names in payloads -> the stored name, over the built-in ones "
        "(`temp`, `rh`, `lux`, ...).",
    )
    max_future: Duration = Field(300.0, description="A source time this far ahead of the receive time is refused.")
    max_age: Duration = Field(
        30 * 86400.0, description="A source time this far behind the receive time is refused."
    )
    implausible_ts: Literal["refuse", "receive_time"] = Field(
        "refuse", description="What becomes of a reading whose source time is out of bounds: dead-lettered, or "
        "stored at the receive time.",
    )
    deadletter_payload_bytes: int = Field(
        4096, ge=64, le=1024 * 1024, description="A dead letter keeps this much of the original payload."
    )
    dedup_series: int = Field(
        10_000, ge=0, le=10_000_000, description="Series remembered to drop duplicates (0: no deduplication)."
    )
    dedup_per_series: int = Field(
        16, ge=1, le=10_000, description="Timestamps and seqs remembered per series to drop duplicates."
    )
    calibration: dict[SeriesId, CalibrationSpec] = Field(
        default_factory=dict, description="Corrections per series `device/sensor/metric`, in the metric's stored "
        "unit: `{offset: -0.4}` or `{points: [[raw1, reference1], [raw2, reference2]]}` (docs/calibration.md). "
        "The initial value: a later change from the dashboard wins until this one is edited.",
    )

    def corrections(self) -> dict[str, Correction]:
        """The configured calibrations, by series id."""
        return {series: spec.correction() for series, spec in self.calibration.items()}

    @field_validator("units")
    @classmethod
    def _units(cls, v: dict[str, str]) -> dict[str, str]:
        merged = {**METRIC_UNITS, **_MORE_UNITS}
        for metric, unit in v.items():
            metric = metric_name(metric)
            known = merged.get(metric)
            if known is not None and dimension_of(UNIT_ALIASES.get(unit, unit)) != dimension_of(known):
                raise ValueError(f"{metric}: {unit!r} is not a unit of {metric} (such as {known!r})")
            merged[metric] = UNIT_ALIASES.get(unit, unit)
        return merged

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, v: dict[str, ValueRange]) -> dict[str, ValueRange]:
        merged = {k: ValueRange(min=lo, max=hi) for k, (lo, hi) in DEFAULT_RANGES.items()}
        merged.update(v)
        return merged

    @field_validator("metric_aliases")
    @classmethod
    def _aliases(cls, v: dict[str, str]) -> dict[str, str]:
        merged = dict(_DEFAULT_ALIASES)
        merged.update({k.lower(): metric_name(m) for k, m in v.items()})
        return merged

    @field_validator("sources")
    @classmethod
    def _distinct(cls, v: list[SourceSettings]) -> list[SourceSettings]:
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"two sources are named {s.name!r}; names must be distinct")
            seen.add(s.name)
        return v

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # Validators of merged dicts run only for given keys; run them for the defaults too.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("units", "ranges", "metric_aliases"):
                data.setdefault(key, {})
        return data

    def all_sources(self, root: str = "vigil") -> list[SourceSettings]:
        """The configured sources with the built-in ``vigil`` source first (a topic goes to the first
        source whose filter takes it); overlapping filters are logged."""
        builtin = next((s for s in self.sources if s.name == BUILTIN_SOURCE), None)
        if builtin is None:
            builtin = SourceSettings(name=BUILTIN_SOURCE, format="vigil_json")
        out = [builtin, *(s for s in self.sources if s.name != BUILTIN_SOURCE)]
        _check_overlaps(out, root)
        return out


def _check_overlaps(sources: list[SourceSettings], root: str) -> None:
    # Usual patterns overlap in theory (+/sensor/+/state and shellies/+/...); a topic that fits both
    # would come from the broker once per subscription, so say so once at start.
    filters = [(s.name, s.subscription(root)) for s in sources]
    for i, (name_a, a) in enumerate(filters):
        for name_b, b in filters[i + 1 :]:
            if filters_overlap(a, b):
                log.warning(
                    "sources %r (%s) and %r (%s) overlap: a topic that fits both goes to %r, and the broker "
                    "may deliver it twice", name_a, a, name_b, b, name_a,
                )
