"""The pydantic models of one alert rule as written in YAML (``rules:`` in a rules file)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator, model_validator

from alerting.transition import Severity
from vigil.core.configtypes import STRICT, Duration

__all__ = [
    "AggregateSpec",
    "AnomalySpec",
    "ConditionSpec",
    "DifferenceSpec",
    "DriftSpec",
    "FlappingSpec",
    "ForecastSpec",
    "JumpSpec",
    "MatchSpec",
    "NodataSpec",
    "NoiseSpec",
    "RateSpec",
    "RestartsSpec",
    "RuleSpec",
    "StaleSpec",
    "StuckSpec",
    "percentile_of",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SERIES = re.compile(r"^[^/+#$\x00]+/[^/+#\x00]+/[^/+#\x00]+$")
_PCT = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


def percentile_of(fn: str) -> Optional[float]:
    """``p95`` -> 95.0; None for avg/min/max."""
    m = _PCT.match(fn)
    return float(m.group(1)) if m else None


def _series_id(value: str) -> str:
    if not isinstance(value, str) or not _SERIES.match(value):
        raise ValueError(f"expected a series id device/sensor/metric, got {value!r}")
    return value


class MatchSpec(BaseModel):
    """Which series a rule watches: globs on metric, device, sensor, and exact or glob labels."""

    model_config = STRICT

    metric: str = "*"
    device: str = "*"
    sensor: str = "*"
    labels: dict[str, str] = Field(default_factory=dict)


class RateSpec(BaseModel):
    """Change per minute over a window, compared to thresholds."""

    model_config = STRICT

    window: Duration = 300.0
    above: Optional[float] = None
    below: Optional[float] = None

    @model_validator(mode="after")
    def _one_bound(self) -> RateSpec:
        if self.above is None and self.below is None:
            raise ValueError("rate needs above (rise per minute) and/or below (fall per minute)")
        if self.window <= 0:
            raise ValueError("rate window must be longer than 0s")
        return self


class NodataSpec(BaseModel):
    """No reading for ``after``: the sensor went silent."""

    model_config = STRICT

    after: Duration


class AggregateSpec(BaseModel):
    """avg/min/max or a percentile (p95) over a window, compared to thresholds."""

    model_config = STRICT

    fn: str = "avg"
    window: Duration = 600.0
    above: Optional[float] = None
    below: Optional[float] = None
    clear_below: Optional[float] = None
    clear_above: Optional[float] = None

    @field_validator("fn")
    @classmethod
    def _known_fn(cls, v: str) -> str:
        if v in ("avg", "mean", "min", "max", "median"):
            return v
        p = percentile_of(v)
        if p is None or not 0 < p < 100:
            raise ValueError(f"fn must be avg, min, max, median or a percentile such as p95, got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_bound(self) -> AggregateSpec:
        if self.above is None and self.below is None:
            raise ValueError("aggregate needs above and/or below")
        if self.window <= 0:
            raise ValueError("aggregate window must be longer than 0s")
        return self


class AnomalySpec(BaseModel):
    """A value far from the series' recent behaviour; quiet until ``warmup`` samples were seen."""

    model_config = STRICT

    method: Literal["zscore", "ewma", "mad"] = "zscore"
    window: Duration = 3600.0
    threshold: float = Field(3.0, gt=0)
    warmup: int = Field(20, ge=3, le=100_000)
    alpha: float = Field(0.1, gt=0, le=1)


class DifferenceSpec(BaseModel):
    """The latest value of series ``a`` minus that of series ``b`` (e.g. supply minus return)."""

    model_config = STRICT

    a: str
    b: str

    _check_a = field_validator("a")(classmethod(lambda cls, v: _series_id(v)))
    _check_b = field_validator("b")(classmethod(lambda cls, v: _series_id(v)))


class FlappingSpec(BaseModel):
    """``changes`` firing/resolved changes within ``window`` make an alert flap."""

    model_config = STRICT

    changes: int = Field(6, ge=2, le=1000)
    window: Duration = 3600.0


_DEFAULT_FLAPPING = FlappingSpec()


class StaleSpec(BaseModel):
    """No reading ARRIVED (the engine's clock, not the source time) for longer than expected: ``after`` (fixed)
    or ``factor`` times the series' usual interval (the median of its last readings' intervals), never less
    than ``min``, judged once ``warmup`` intervals were seen."""

    model_config = STRICT
    #: the default message (``value``: seconds of silence; ``interval``: the usual interval, when known)
    MESSAGE: ClassVar[str] = (
        "{{ device }}/{{ sensor }} {% if state == 'resolved' %}reports again{% else %}has sent nothing for "
        "{{ value | duration }}{% if interval %} (it usually reports every {{ interval | duration }}){% endif %}"
        "{% endif %}")

    after: Optional[Duration] = None
    factor: Optional[float] = None
    min: Duration = 10.0
    warmup: int = Field(5, ge=2, le=1000)

    @model_validator(mode="after")
    def _one_limit(self) -> StaleSpec:
        if (self.after is None) == (self.factor is None):
            both = "not both: " if self.after is not None else ""
            raise ValueError(f"{both}stale needs after (a fixed interval, e.g. after: 2m) or factor (times the series' "
                             "usual interval, e.g. factor: 3), one of them")
        if self.after is not None and self.after <= 0:
            raise ValueError("stale after must be longer than 0s")
        if self.factor is not None and self.factor <= 1:
            raise ValueError(f"stale factor must be more than 1 (times the usual interval), got {self.factor}")
        return self


class StuckSpec(BaseModel):
    """The value stays within ``band`` of where a run began for longer than ``after`` (fixed) or ``factor`` times
    the longest such run seen during ``warmup`` (never less than ``min``), while readings keep arriving; it
    does not fire while every sibling that reports (``siblings``: ``device``, ``label:<name>``) is as still."""

    model_config = STRICT
    #: the default message (``value``: the reading; ``stuck_since``: when the run began)
    MESSAGE: ClassVar[str] = (
        "{{ device }}/{{ sensor }} {% if state == 'resolved' %}changes again ({{ value_text }}"
        "{% if unit %} {{ unit }}{% endif %}){% else %}has read {{ value_text }}{% if unit %} {{ unit }}{% endif %}"
        " unchanged since {{ stuck_since | time }}{% endif %}")

    after: Optional[Duration] = None
    factor: Optional[float] = None
    min: Duration = 600.0
    warmup: Duration = 86400.0
    band: float = Field(0.0, ge=0)
    siblings: Union[str, list[str]] = Field(default_factory=lambda: ["device", "label:room"])

    @field_validator("siblings")
    @classmethod
    def _groups(cls, v: Union[str, list[str]]) -> list[str]:
        groups = [v] if isinstance(v, str) else v
        if groups == ["none"]:
            return []
        for g in groups:
            if g != "device" and not (g.startswith("label:") and len(g) > len("label:")):
                raise ValueError(f"siblings are device, label:<name> (e.g. label:room) or none, got {g!r}")
        return groups

    @model_validator(mode="after")
    def _one_limit(self) -> StuckSpec:
        if (self.after is None) == (self.factor is None):
            both = "not both: " if self.after is not None else ""
            raise ValueError(f"{both}stuck needs after (a fixed time, e.g. after: 2h) or factor (times the longest "
                             "flat run seen during warmup, e.g. factor: 4), one of them")
        if self.after is not None and self.after <= 0:
            raise ValueError("stuck after must be longer than 0s")
        if self.factor is not None and self.factor <= 1:
            raise ValueError(f"stuck factor must be more than 1 (times the longest flat run), got {self.factor}")
        if self.warmup <= 0:
            raise ValueError("stuck warmup must be longer than 0s")
        return self


class ForecastSpec(BaseModel):
    """Will cross ``above`` (rising) or ``below`` (falling) within ``within``, from a robust trend over
    ``window`` (alerting/conditions/forecast.py); quiet with fewer than ``min_samples`` readings."""

    model_config = STRICT
    #: the default message (``value``/``eta``: seconds to the crossing; ``rate``: per minute; ``reason``: in words)
    MESSAGE: ClassVar[str] = "{{ reason }}"

    above: Optional[float] = None
    below: Optional[float] = None
    within: Duration
    window: Duration = 1800.0
    min_samples: int = Field(10, ge=4, le=100_000)

    @model_validator(mode="after")
    def _one_bound(self) -> ForecastSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("forecast needs exactly one of above (rising to it) or below (falling to it)")
        if self.within <= 0 or self.window <= 0:
            raise ValueError("forecast within and window must be longer than 0s")
        return self


class JumpSpec(BaseModel):
    """A reading further than ``max_step`` per ``per`` (scaled by the time since the last plausible
    reading, never less than ``max_step``) from the last plausible reading (alerting/conditions/jump.py)."""

    model_config = STRICT
    #: the default message (``value``: the reading; ``jumped_from``, ``elapsed``; ``reason``: in words)
    MESSAGE: ClassVar[str] = "{{ reason }}"

    max_step: float = Field(gt=0)
    per: Duration = 60.0

    @model_validator(mode="after")
    def _positive(self) -> JumpSpec:
        if self.per <= 0:
            raise ValueError("jump per must be longer than 0s")
        return self


class NoiseSpec(BaseModel):
    """The spread of successive differences over ``recent`` more than ``factor`` times that over the rest
    of ``window`` (and above ``min_spread``, e.g. the sensor's resolution)."""

    model_config = STRICT
    #: the default message (``value``: the ratio; ``spread``, ``usual``; ``reason``: in words)
    MESSAGE: ClassVar[str] = "{{ reason }}"

    factor: float = Field(5.0, gt=1)
    window: Duration = 3600.0
    recent: Duration = 300.0
    min_spread: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _recent_inside(self) -> NoiseSpec:
        if not 0 < self.recent <= self.window / 2:
            raise ValueError("noise recent must be longer than 0s and at most half the window "
                             "(the rest of the window is the series' usual spread)")
        return self


class DriftSpec(BaseModel):
    """Two sensors in the same space part: the hourly difference between a series and its siblings
    (``siblings``, as for stuck) moved more than ``max`` from its baseline over ``over``, with a
    significant trend (alerting/conditions/drift.py); it clears back within ``max`` / 2."""

    model_config = STRICT
    #: the default message (``value``/``difference``: the current difference; ``baseline``; ``rate``
    #: per day; ``siblings``; ``reason``: in words)
    MESSAGE: ClassVar[str] = "{{ reason }}"

    max: float = Field(1.0, gt=0, allow_inf_nan=False)
    over: Duration = 7 * 86400.0
    siblings: Union[str, list[str]] = Field(default_factory=lambda: ["device", "label:room"])

    _groups = field_validator("siblings")(classmethod(lambda cls, v: StuckSpec._groups(v)))

    @model_validator(mode="after")
    def _days(self) -> DriftSpec:
        if not 2 * 86400.0 <= self.over <= 90 * 86400.0:
            raise ValueError("drift over must be 2d to 90d (it compares hourly differences over days)")
        if self.siblings == []:
            raise ValueError("drift needs siblings to compare with: device, label:<name> or a list of them")
        return self


class RestartsSpec(BaseModel):
    """The series (an ``uptime``) went down ``count`` times within ``within``: the device rebooted
    (alerting/conditions/restarts.py)."""

    model_config = STRICT
    #: the default message (``value``/``restarts``: reboots in the window; ``reason``: in words)
    MESSAGE: ClassVar[str] = "{{ reason }}"

    count: int = Field(3, ge=1, le=10_000)
    within: Duration = 86400.0

    @model_validator(mode="after")
    def _positive(self) -> RestartsSpec:
        if self.within <= 0:
            raise ValueError("restarts within must be longer than 0s")
        return self


class ConditionSpec(BaseModel):
    """One condition; a rule is a condition plus what to do when it holds."""

    model_config = STRICT

    above: Optional[float] = None
    below: Optional[float] = None
    clear_below: Optional[float] = None
    clear_above: Optional[float] = None
    rate: Optional[RateSpec] = None
    nodata: Optional[Union[Duration, NodataSpec]] = None
    aggregate: Optional[AggregateSpec] = None
    anomaly: Optional[AnomalySpec] = None
    offline: Optional[bool] = None
    difference: Optional[DifferenceSpec] = None
    all: Optional[list[ConditionSpec]] = None
    any: Optional[list[ConditionSpec]] = None
    # Only inside all/any: the child looks at this other series (device/sensor/metric).
    series: Optional[str] = None
    stale: Optional[StaleSpec] = None
    stuck: Optional[StuckSpec] = None
    forecast: Optional[ForecastSpec] = None
    jump: Optional[JumpSpec] = None
    noise: Optional[NoiseSpec] = None
    drift: Optional[DriftSpec] = None
    restarts: Optional[RestartsSpec] = None

    def kinds(self) -> list[str]:
        """The kinds of condition this spec names (exactly one is valid)."""
        out = []
        if self.above is not None or self.below is not None:
            out.append("threshold")
        for name in ("rate", "nodata", "aggregate", "anomaly", "all", "any"):
            if getattr(self, name) is not None:
                out.append(name)
        if self.offline:
            out.append("offline")
        out += [k for k in ("stale", "stuck", "forecast", "jump", "noise", "drift", "restarts")
                if getattr(self, k) is not None]
        return out

    def default_message(self) -> Optional[str]:
        """The message template of the condition's kind, if it has its own (a spec's ``MESSAGE``)."""
        kinds = self.kinds()
        spec = getattr(self, kinds[0], None) if len(kinds) == 1 else None
        message = getattr(spec, "MESSAGE", None)
        return message if isinstance(message, str) else None

    @model_validator(mode="after")
    def _exactly_one(self) -> ConditionSpec:
        kinds = self.kinds()
        if not kinds:
            raise ValueError(
                "no condition: give one of above/below, rate, nodata, aggregate, anomaly, offline, all, any, "
                "stale, stuck, forecast, jump, noise, drift, restarts"
            )
        if len(kinds) > 1:
            raise ValueError(f"one condition per rule or child, got {' and '.join(kinds)}; combine them with all/any")
        if self.clear_below is not None and self.above is None:
            raise ValueError("clear_below goes with above")
        if self.clear_above is not None and self.below is None:
            raise ValueError("clear_above goes with below")
        if self.above is not None and self.clear_below is not None and self.clear_below > self.above:
            raise ValueError(
                f"clear_below ({self.clear_below}) must be at or below above ({self.above}), "
                "or the alert could never clear"
            )
        if self.below is not None and self.clear_above is not None and self.clear_above < self.below:
            raise ValueError(
                f"clear_above ({self.clear_above}) must be at or above below ({self.below}), "
                "or the alert could never clear"
            )
        if self.difference is not None and kinds != ["threshold"]:
            raise ValueError("difference goes with above/below")
        if isinstance(self.series, str):
            _series_id(self.series)
        for group in (self.all, self.any):
            if group is not None and not group:
                raise ValueError("all/any needs at least one condition")
        return self


class RuleSpec(ConditionSpec):
    """One rule: a condition on the series it matches, with timing, severity and message."""

    name: str
    match: MatchSpec = Field(default_factory=MatchSpec)
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: Severity = Severity.WARNING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    notify: Union[str, list[str]] = Field(default_factory=list)
    message: Optional[str] = None
    # Series declared here are watched for nodata even before they ever reported.
    series: Optional[list[str]] = None  # type: ignore[assignment]
    flapping: Union[FlappingSpec, bool] = True
    source: Literal["events", "store"] = "events"
    every: Duration = 60.0
    enabled: bool = True
    #: a jump or noise rule: a reading it flags is kept out of every other rule on its series
    hold_out: bool = False
    #: a fired alert whose condition clears stays CLEARED until someone acknowledges it (docs/rules.md)
    latch: bool = False

    @field_validator("name")
    @classmethod
    def _good_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "a rule name is 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit "
                f"(it becomes an MQTT topic level), got {v!r}"
            )
        return v

    @field_validator("series")
    @classmethod
    def _declared(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        for s in v or []:
            _series_id(s)
        return v

    @model_validator(mode="after")
    def _rule_checks(self) -> RuleSpec:
        if self.source == "store":
            kinds = self.kinds()
            if kinds not in (["aggregate"], ["nodata"], ["threshold"]) or self.difference is not None:
                raise ValueError("source: store runs aggregate, nodata and above/below rules only")
            if self.every <= 0:
                raise ValueError("every must be longer than 0s")
        if self.hold_out and self.kinds() not in (["jump"], ["noise"]):
            raise ValueError("hold_out is for jump and noise rules: a reading they flag is kept out of the "
                             "other rules")
        return self

    @property
    def receivers(self) -> tuple[str, ...]:
        return (self.notify,) if isinstance(self.notify, str) else tuple(self.notify)

    @property
    def flap(self) -> Optional[FlappingSpec]:
        if self.flapping is True:
            return _DEFAULT_FLAPPING  # (read on every evaluation: one model, not one each time)
        return self.flapping or None
