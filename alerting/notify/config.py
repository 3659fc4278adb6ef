"""The notification keys of a rules file: receivers, routes, grouping, escalation, inhibit, silences, mute windows.

Example (top level of a rules file, beside ``rules:``)::

    receivers:
      kitchen-staff:
        urls: ["ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}",
               "mailto://${VIGIL_NOTIFY_SMTP_USER}:${VIGIL_NOTIFY_SMTP_PASS}@example.com"]
        fallback: [manager]   # a message still failing after 2m (or 5 attempts) goes to manager
        after: 2m
        attempts: 5
      manager: ["tgram://${VIGIL_NOTIFY_TELEGRAM_TOKEN}/12345"]
    routes:
      - match: {severity: critical}
        receivers: [manager]
        continue: true
      - match: {site: "kitchen-*"}
        receivers: [kitchen-staff]
    grouping: {group_by: [rule], group_wait: 5s, group_interval: 1m, repeat_interval: 4h}
    escalation:
      - {after: 15m, receivers: [manager], match: {severity: critical}}
    inhibit:
      - {source: {rule: device-offline}, target: {metric: temperature}, equal: [device]}
    silences:
      - {match: {device: "freezer-2"}, until: "2026-12-01T08:00:00+01:00", comment: defrosting}
    mute_windows:
      - {name: nights, time_zone: Europe/Berlin, weekdays: [mon, tue, wed, thu, fri],
         start: "22:00", end: "07:00", allow_severity: [critical]}

A ``match`` maps ``severity``, ``rule``, ``device``, ``sensor``, ``metric`` or any label name to a
glob (or a list of globs, any of which may match). Secrets in receiver URLs come from
``${VIGIL_NOTIFY_...}`` environment variables, and from no other: a receiver URL is sent to a
service of the rules' author's choosing, so ``${VIGIL_MQTT_PASSWORD}`` there would hand the
broker's password to anyone who may edit the rules.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any, Optional, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import core_schema

from alerting.report.config import Reports
from alerting.transition import Severity
from vigil.core.configtypes import STRICT, Duration
from vigil.core.errors import VigilError

from .oncall import PolicyStep, Schedule, names_problem
from .receiver_options import Fallback, fallback_problem, relocated, split_receivers

__all__ = [
    "ENV_PREFIX",
    "Delivery",
    "EscalationStep",
    "Fallback",
    "Grouping",
    "InhibitRule",
    "Match",
    "MissingSecret",
    "MuteWindow",
    "NotifyConfig",
    "ReceiverUrl",
    "Route",
    "SecretNotAllowed",
    "StaticSilence",
    "matches",
]

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_PREFIX = "VIGIL_NOTIFY_"
_PORT = r"(:(\d{1,5}|\$\{[A-Za-z_][A-Za-z0-9_]*\}))?"
_HOSTLIKE = re.compile(rf"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]){_PORT}")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MissingSecret(VigilError):
    """A receiver URL names an environment variable that is not set."""

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(variable)

    def __str__(self) -> str:
        return f"environment variable {self.variable} is not set (named in a receiver URL)"


class SecretNotAllowed(MissingSecret):
    """A receiver URL names an environment variable outside ``VIGIL_NOTIFY_*``; it is never read."""

    def __str__(self) -> str:
        return not_allowed(self.variable)


def not_allowed(*variables: str) -> str:
    """What to do about ``${VAR}`` references in a receiver URL that are not VIGIL_NOTIFY_ names."""
    refs = ", ".join(f"${{{v}}}" for v in variables)
    head = f"{refs} {'is' if len(variables) == 1 else 'are'} not allowed in a receiver URL: only variables named " \
        f"{ENV_PREFIX}*"
    own = [v for v in variables if v.startswith("VIGIL_")]
    if own:
        what = "is one of Vigil's own settings and never goes" if len(own) == 1 else \
            "are Vigil's own settings and never go"
        return (f"{head}; {', '.join(own)} {what} to a receiver: give the receiver's secret a variable of its "
                f"own, such as {ENV_PREFIX}{own[0][len('VIGIL_'):]}")
    renamed = ", ".join(ENV_PREFIX + v for v in variables)
    return f"{head}; rename {'it' if len(variables) == 1 else 'them'} to {renamed}"


def allowed(variable: str) -> bool:
    """Whether a receiver URL may name the environment variable ``variable``."""
    return variable.startswith(ENV_PREFIX) and len(variable) > len(ENV_PREFIX)


class ReceiverUrl:
    """An apprise URL as written (``${VAR}`` unresolved); its repr and str never show secrets."""

    __slots__ = ("template",)

    def __init__(self, template: str) -> None:
        self.template = template

    def resolve(self, env: Optional[Mapping[str, str]] = None) -> str:
        """The URL with every ``${VAR}`` replaced from ``env`` (default: the process environment)."""
        source = os.environ if env is None else env

        def sub(m: re.Match[str]) -> str:
            if not allowed(m.group(1)):  # a URL stored before the rule, or made without validation
                raise SecretNotAllowed(m.group(1))
            if m.group(1) not in source:
                raise MissingSecret(m.group(1))
            return source[m.group(1)]

        return _ENV_REF.sub(sub, self.template)

    @property
    def masked(self) -> str:
        """Scheme and host only, enough to tell receivers apart in logs and the dashboard."""
        return mask_apprise_url(self.template)

    def __repr__(self) -> str:
        return f"ReceiverUrl({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReceiverUrl) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    @classmethod
    def _validate(cls, value: Any) -> ReceiverUrl:
        if isinstance(value, ReceiverUrl):
            return value
        if not isinstance(value, str) or "://" not in value:
            raise ValueError("expected an apprise URL such as ntfy://ntfy.sh/my-topic or json://host:port/path")
        refs = _ENV_REF.findall(value)
        for ref in refs:
            if not _ENV_NAME.fullmatch(ref):
                raise ValueError(f"${{{ref}}} is not an environment variable name (letters, digits, _)")
        refused = [r for r in dict.fromkeys(refs) if not allowed(r)]
        if refused:
            raise ValueError(not_allowed(*refused))
        if "${" in _ENV_REF.sub("", value):
            raise ValueError("an unclosed ${ in the URL; write ${VIGIL_NOTIFY_NAME}")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.masked),
        )


def mask_apprise_url(url: str) -> str:
    """``scheme://host/***``: apprise keeps tokens in the user part, the host, the path and the query alike."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    # many services put a token where the host would be (tgram://TOKEN/chat): show only real host names
    if not _HOSTLIKE.fullmatch(host) or not ("." in host or host.startswith(("localhost", "["))):
        return f"{scheme}://***"
    return f"{scheme}://{host}/***" if len(rest) > len(host) or "@" in rest else f"{scheme}://{host}"


def _match_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("expected a glob or a list of globs")


class Match(BaseModel):
    """Which alerts a route, an inhibit side, a silence or a mute window applies to; empty matches all."""

    model_config = STRICT

    globs: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, Match):
            return data
        if data is None:
            return {"globs": {}}
        if not isinstance(data, dict):
            raise ValueError("expected a mapping such as {severity: critical, device: \"freezer-*\"}")
        if set(data) == {"globs"} and isinstance(data["globs"], dict):
            return data
        globs: dict[str, tuple[str, ...]] = {}
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"match keys are label names, got {key!r}")
            values = _match_values(value)
            if key == "severity":
                known = [s.value for s in Severity]
                for v in values:
                    if not any(fnmatch.fnmatchcase(s, v) for s in known):
                        raise ValueError(f"severity {v!r} is none of {', '.join(known)}")
            globs[key] = tuple(values)
        return {"globs": globs}

    @model_serializer
    def _as_mapping(self) -> dict[str, Any]:
        return {k: v[0] if len(v) == 1 else list(v) for k, v in self.globs.items()}

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return matches(self, labels)


def matches(match: Match, labels: Mapping[str, str]) -> bool:
    """True when every key of ``match`` has a value in ``labels`` that one of its globs matches."""
    for key, globs in match.globs.items():
        value = labels.get(key)
        if value is None or not any(fnmatch.fnmatchcase(value, g) for g in globs):
            return False
    return True


class Route(BaseModel):
    """Alerts that ``match`` go to ``receivers``; the first matching route wins unless it says ``continue``."""

    model_config = STRICT

    match: Match = Field(default_factory=Match)
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")


class Grouping(BaseModel):
    """Alerts with equal ``group_by`` labels share one message per receiver.

    A newly firing alert is sent at most ``group_wait`` after it reaches the dispatcher, with whatever
    else of its group is new by then; ``group_interval`` spaces out reminders and resolutions of alerts
    already told (docs/notifications.md, "Grouping").
    """

    model_config = STRICT

    group_by: list[str] = Field(default_factory=lambda: ["rule"])
    group_wait: Duration = 5.0
    group_interval: Duration = 60.0
    repeat_interval: Duration = 4 * 3600.0

    @field_validator("repeat_interval")
    @classmethod
    def _repeat_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("repeat_interval must be more than 0s")
        return v


class EscalationStep(BaseModel):
    """A firing alert that nobody acknowledged ``after`` this long is also sent to ``receivers``."""

    model_config = STRICT

    after: Duration
    receivers: list[str] = Field(min_length=1)
    match: Match = Field(default_factory=Match)


class InhibitRule(BaseModel):
    """While a ``source`` alert fires, ``target`` alerts with the same ``equal`` labels stay quiet."""

    model_config = STRICT

    source: Match
    target: Match
    equal: list[str] = Field(default_factory=list)


class StaticSilence(BaseModel):
    """Alerts that ``match`` send nothing from ``starts`` until ``until``."""

    model_config = STRICT

    id: Optional[str] = None
    match: Match
    until: AwareDatetime
    starts: Optional[AwareDatetime] = None
    comment: str = ""
    by: str = "rules file"

    @model_validator(mode="after")
    def _order(self) -> StaticSilence:
        if self.starts is not None and self.starts >= self.until:
            raise ValueError("starts must be before until")
        return self


def _clock_time(value: Any) -> dt.time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320 (minutes)
        value = f"{value // 60:02d}:{value % 60:02d}" if 0 <= value < 24 * 60 else str(value)
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(p) for p in value.strip().split(":"))
        if hours == 24 and minutes == 0:
            return dt.time(0, 0)
        if hours < 24 and minutes < 60:
            return dt.time(hours, minutes)
    raise ValueError(f"expected a time of day such as \"22:00\", got {value!r}")


class MuteWindow(BaseModel):
    """Quiet hours: from ``start`` to ``end`` local time on ``weekdays`` nothing is sent except ``allow_severity``."""

    model_config = STRICT

    name: str
    time_zone: str = "UTC"
    weekdays: list[str] = Field(default_factory=lambda: list(_WEEKDAYS))
    start: dt.time
    end: dt.time
    allow_severity: list[Severity] = Field(default_factory=list)
    match: Match = Field(default_factory=Match)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {v!r}; write e.g. Europe/Berlin or UTC") from exc
        return v

    @field_validator("weekdays", mode="before")
    @classmethod
    def _days(cls, v: Any) -> list[str]:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list):
            raise ValueError("expected a list of weekdays such as [mon, tue] or \"mon-fri\"")
        days: list[str] = []
        for item in items:
            text = str(item).strip().lower()
            if "-" in text:
                a, _, b = (part.strip()[:3] for part in text.partition("-"))
                if a not in _WEEKDAYS or b not in _WEEKDAYS:
                    raise ValueError(f"expected weekdays mon..sun, got {item!r}")
                i, j = _WEEKDAYS.index(a), _WEEKDAYS.index(b)
                span = range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)]
                days.extend(_WEEKDAYS[k] for k in span)
            elif text[:3] in _WEEKDAYS:
                days.append(text[:3])
            else:
                raise ValueError(f"expected weekdays mon..sun, got {item!r}")
        return sorted(set(days), key=_WEEKDAYS.index)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _times(cls, v: Any) -> dt.time:
        return v if isinstance(v, dt.time) else _clock_time(v)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Delivery(BaseModel):
    """How failed sends are retried, and what a restart does with a send whose outcome it never learned."""

    model_config = STRICT

    retry_initial: Duration = 5.0
    retry_max: Duration = 300.0
    failing_after: int = Field(3, ge=1)
    # resend: a crash while sending may duplicate (marked as such); skip: it may lose that one message
    in_doubt: str = Field("resend", pattern="^(resend|skip)$")


class NotifyConfig(BaseModel):
    """Every notification key of a rules file, validated; the engine passes it to the Dispatcher."""

    model_config = STRICT

    receivers: dict[str, list[ReceiverUrl]] = Field(default_factory=dict)
    # from the mapping form of a receiver ({urls: [...], fallback: [...], after: 2m}); see _receiver_forms
    fallbacks: dict[str, Fallback] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    grouping: Grouping = Field(default_factory=Grouping)
    escalation: list[EscalationStep] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)
    silences: list[StaticSilence] = Field(default_factory=list)
    mute_windows: list[MuteWindow] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)
    # on call (alerting/notify/oncall.py): names usable wherever a receiver's is
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    escalation_policies: dict[str, list[PolicyStep]] = Field(default_factory=dict)
    reports: Reports = Field(default_factory=list)  # scheduled reports: alerting/report/config.py

    @field_validator("receivers", mode="before")
    @classmethod
    def _single_url(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [u] if isinstance(u, str) else u for k, u in v.items()}
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _receiver_forms(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> NotifyConfig:
        """A receiver is a URL, a list of URLs, or ``{urls: [...], fallback: [...], after:, attempts:}``.

        The options go to ``fallbacks`` and the URLs to ``receivers``; errors keep the paths the user wrote.
        """
        if not isinstance(data, dict) or not isinstance(data.get("receivers"), dict):
            return _as_config(handler(data))
        receivers, fallbacks, forms = split_receivers(data["receivers"], data.get("fallbacks"))
        try:
            config = _as_config(handler({**data, "receivers": receivers, "fallbacks": fallbacks}))
        except ValidationError as exc:
            raise relocated(exc, forms) from None
        problem = fallback_problem(config.receivers, config.fallbacks) or names_problem(config)
        if problem:
            raise ValidationError.from_exception_data("NotifyConfig", [problem])
        return config

    @model_validator(mode="after")
    def _known_receivers(self) -> NotifyConfig:
        for i, route in enumerate(self.routes):
            self._check_names(route.receivers, f"routes[{i}]", policies=True)
        for i, step in enumerate(self.escalation):
            self._check_names(step.receivers, f"escalation[{i}]", policies=False)
        for i, report in enumerate(self.reports):
            # a report goes to receivers only: a schedule's person changes, the file goes to a fixed list
            unknown = [n for n in report.receivers if n not in self.receivers]
            if unknown:
                raise ValueError(f"reports[{i}]: unknown receiver {unknown[0]!r} (known: "
                                 f"{', '.join(sorted(self.receivers)) or 'none are defined under receivers:'})")
        for name, urls in self.receivers.items():
            if not urls:
                raise ValueError(f"receiver {name!r} has no URL")
        return self

    def _check_names(self, names: list[str], where: str, policies: bool) -> None:
        unknown = [n for n in names if n not in self.receivers and n not in self.schedules
                   and not (policies and n in self.escalation_policies)]
        if unknown:
            raise ValueError(f"{where}: unknown receiver {unknown[0]!r} (known: {self.known_names(policies)})")

    def known_names(self, policies: bool = True) -> str:
        """The names a rule's ``notify:`` may use (receivers, schedules, policies), for error messages."""
        names = [*self.receivers, *self.schedules, *(self.escalation_policies if policies else ())]
        return ", ".join(sorted(names)) or "none are defined under receivers:"

    def unknown_receivers(self, names: Union[list[str], tuple[str, ...]]) -> list[str]:
        """Names (from a rule's ``notify``) that no receiver, schedule or policy defines; the rules loader
        reports them."""
        return [n for n in names if n not in self.receivers and n not in self.schedules
                and n not in self.escalation_policies]

    def missing_secrets(self, env: Optional[Mapping[str, str]] = None) -> list[str]:
        """Environment variables that receiver URLs name but that are not set."""
        source = os.environ if env is None else env
        names = {ref for urls in self.receivers.values() for u in urls for ref in _ENV_REF.findall(u.template)}
        return sorted(n for n in names if n not in source)


def _as_config(value: Any) -> NotifyConfig:
    assert isinstance(value, NotifyConfig)
    return value
