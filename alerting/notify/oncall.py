"""On call: schedules (who is on duty now) and escalation policies (who next, when nobody acknowledges).

Top level of a rules file, beside ``receivers:``::

    schedules:
      cooks:
        rotation: weekly        # or daily
        handover: "07:00"       # local time in time_zone (default: the site's)
        day: mon                # weekly only: the hand-over weekday; start must fall on it
        start: 2026-01-05       # the first person's first shift begins at the hand-over that day
        people: [anna, ben, carla]          # receiver names, in turn
        overrides:
          - {from: "2026-12-24", until: "2026-12-27", person: ben}   # a date alone: its hand-over time
          - {from: "2026-12-31 18:00", until: "2027-01-01 07:00", person: carla}
        time_zone: Europe/Berlin
    escalation_policies:
      kitchen:
        - {notify: [cooks]}                 # at once (after: 0s)
        - {after: 10m, notify: [manager]}   # still not acknowledged 10 minutes after it fired
        - {after: 30m, notify: [anna, ben, carla, manager]}

A schedule's name works wherever a receiver's does (a rule's ``notify:``, routes, escalation) and is
resolved when a message is due to the receiver of the person on call then. A policy's name works in a
rule's ``notify:`` and in routes. Hand-overs are wall-clock times in the schedule's zone (zoneinfo): on
a spring-forward night a hand-over at 02:30, a time that does not exist, happens at 03:30; on a
fall-back night it happens once, at the first 02:30.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails

from vigil.core.configtypes import STRICT, Duration
from vigil.core.sitetime import check_zone, site_zone

if TYPE_CHECKING:
    from .config import NotifyConfig

__all__ = ["OnCall", "Override", "PolicyStep", "Schedule", "expand", "names_problem", "next_handover",
           "on_call", "person_at", "policy_steps", "who_is_on_call"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_YEARS = (1971, 2200)  # dates outside are mistakes, and near the calendar's ends the arithmetic overflows
_MAX_CHANGES = 64  # a rotation whose next person is the same one (one person): look this many changes ahead


def _clock(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        value = f"{value // 60:02d}:{value % 60:02d}"  # YAML 1.1 reads an unquoted 07:00 as 420 (minutes)
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(p) for p in value.strip().split(":"))
        if hours < 24 and minutes < 60:
            return dt.time(hours, minutes)
    raise ValueError(f"expected a time of day such as \"07:00\", got {value!r}")


def _when(value: Any) -> Union[dt.date, dt.datetime]:
    """A date (its hand-over time is meant) or a date and time (naive: in the schedule's zone)."""
    when: Union[dt.date, dt.datetime, None] = None
    if isinstance(value, (dt.date, dt.datetime)):
        when = value
    elif isinstance(value, str) and 10 <= len(value.strip()) <= 40:
        text = value.strip()
        try:
            when = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    if when is not None:
        if not _YEARS[0] <= when.year <= _YEARS[1]:
            raise ValueError(f"expected a date between {_YEARS[0]} and {_YEARS[1]}, got {when.isoformat()}")
        return when
    raise ValueError(f"expected a date such as 2026-12-24 or a date and time such as \"2026-12-24 07:00\", "
                     f"got {str(value)[:60]!r}")


class Override(BaseModel):
    """``person`` is on call from ``from`` until ``until`` instead of whoever the rotation names."""

    model_config = STRICT

    from_: Union[dt.datetime, dt.date] = Field(alias="from")
    until: Union[dt.datetime, dt.date]
    person: str = Field(min_length=1, max_length=200)

    @field_validator("from_", "until", mode="before")
    @classmethod
    def _times(cls, v: Any) -> Union[dt.date, dt.datetime]:
        return _when(v)


class Schedule(BaseModel):
    """A rotation of ``people`` (receiver names), one per day or per week, changing at ``handover``."""

    model_config = STRICT

    rotation: Literal["daily", "weekly"]
    handover: dt.time
    day: Optional[str] = None
    start: dt.date
    people: list[str] = Field(default_factory=list, max_length=1000)
    overrides: list[Override] = Field(default_factory=list, max_length=1000)
    time_zone: Optional[str] = None

    @field_validator("handover", mode="before")
    @classmethod
    def _handover(cls, v: Any) -> dt.time:
        return _clock(v)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: Any) -> dt.date:
        when = _when(v)
        if isinstance(when, dt.datetime):
            raise ValueError("start is a date such as 2026-01-05; the shift begins at its hand-over time")
        return when

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Optional[str]:
        if v is None:
            return None
        if not isinstance(v, str) or v.strip().lower()[:3] not in _WEEKDAYS:
            raise ValueError(f"expected a weekday mon..sun, got {str(v)[:40]!r}")
        return v.strip().lower()[:3]

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_zone(v)

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        if not self.people:
            raise ValueError("people: a schedule needs at least one person (a receiver name)")
        if self.day is not None and self.rotation != "weekly":
            raise ValueError("day: only a weekly rotation has a hand-over day")
        if self.rotation == "weekly" and self.day is not None and _WEEKDAYS[self.start.weekday()] != self.day:
            raise ValueError(f"start {self.start} is a {self.start.strftime('%A')}; a weekly rotation handing "
                             f"over on {self.day} must start on that day")
        zone = self.zone(dt.timezone.utc)
        spans = sorted((_epoch(self, o.from_, zone), _epoch(self, o.until, zone), i)
                       for i, o in enumerate(self.overrides))
        for a, b, i in spans:
            if b <= a:
                raise ValueError(f"overrides[{i}]: until must be after from")
        for (_, end, i), (start, _, j) in zip(spans, spans[1:]):
            if start < end:
                raise ValueError(f"overrides[{min(i, j)}] and overrides[{max(i, j)}] overlap: "
                                 "who would be on call?")
        return self

    def zone(self, default: Optional[dt.tzinfo]) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.time_zone) if self.time_zone else (default or site_zone())


class PolicyStep(BaseModel):
    """A step of an escalation policy: ``notify`` these once the alert is unacknowledged ``after`` it fired."""

    model_config = STRICT

    after: Duration = 0.0
    notify: list[str] = Field(min_length=1, max_length=1000)

    @field_validator("notify", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


@dataclass(frozen=True, slots=True)
class OnCall:
    """Who is on call for ``schedule`` now and until when, and who comes next (None: nobody, or no change)."""

    schedule: str
    person: Optional[str]
    until: Optional[float]
    next_person: Optional[str]
    next_from: Optional[float]


def _local(day: dt.date, at: dt.time, zone: dt.tzinfo) -> float:
    # fold=0: a wall time skipped by spring-forward maps an hour later; a repeated one to its first occurrence
    return dt.datetime.combine(day, at, tzinfo=zone).timestamp()


def _epoch(s: Schedule, when: Union[dt.date, dt.datetime], zone: dt.tzinfo) -> float:
    if isinstance(when, dt.datetime):
        return when.timestamp() if when.tzinfo is not None else when.replace(tzinfo=zone).timestamp()
    return _local(when, s.handover, zone)


def _shift(s: Schedule, ts: float, zone: dt.tzinfo) -> Optional[dt.date]:
    """The date whose hand-over began the regular shift holding ``ts``; None before the first shift."""
    day = dt.datetime.fromtimestamp(ts, zone).date()
    if ts < _local(day, s.handover, zone):
        day -= dt.timedelta(days=1)
    if s.rotation == "weekly":
        day -= dt.timedelta(days=(day.weekday() - s.start.weekday()) % 7)
    return day if day >= s.start else None


def _regular(s: Schedule, ts: float, zone: dt.tzinfo) -> tuple[Optional[str], float]:
    """The rotation's person at ``ts`` (no overrides) and when the rotation next hands over."""
    day = _shift(s, ts, zone)
    if day is None:
        return None, _local(s.start, s.handover, zone)
    period = 7 if s.rotation == "weekly" else 1
    index = (day - s.start).days // period
    return s.people[index % len(s.people)], _local(day + dt.timedelta(days=period), s.handover, zone)


def person_at(s: Schedule, ts: float, zone: dt.tzinfo) -> Optional[str]:
    """The receiver name of whoever is on call at ``ts``: an override's person, else the rotation's."""
    for o in s.overrides:
        if _epoch(s, o.from_, zone) <= ts < _epoch(s, o.until, zone):
            return o.person
    return _regular(s, ts, zone)[0]


def next_handover(s: Schedule, ts: float, zone: dt.tzinfo) -> float:
    """The first moment after ``ts`` at which whoever is on call may change (a hand-over, an override's edge)."""
    edges = [_regular(s, ts, zone)[1]]
    for o in s.overrides:
        edges += [e for e in (_epoch(s, o.from_, zone), _epoch(s, o.until, zone)) if e > ts]
    return min(edges)


def on_call(name: str, s: Schedule, now: float, zone: dt.tzinfo) -> OnCall:
    person = person_at(s, now, zone)
    ts = now
    for _ in range(_MAX_CHANGES):
        ts = next_handover(s, ts, zone)
        nxt = person_at(s, ts, zone)
        if nxt != person:
            return OnCall(name, person, ts, nxt, ts)
    return OnCall(name, person, None, None, None)


def who_is_on_call(config: NotifyConfig, now: float, zone: Optional[dt.tzinfo]) -> list[OnCall]:
    """Now and next for every schedule of ``config``, for the dashboard; ``zone`` is the site's."""
    return [on_call(name, s, now, s.zone(zone)) for name, s in sorted(config.schedules.items())]


def expand(config: NotifyConfig, names: Iterable[str], now: float, zone: Optional[dt.tzinfo]) -> list[str]:
    """Receiver names for ``names``: a receiver as it is, a schedule's person on call at ``now``, a policy's
    first step (its own names expanded the same way)."""
    out: list[str] = []
    for name in names:
        policy = config.escalation_policies.get(name)
        if policy is not None:
            targets = expand(config, policy[0].notify, now, zone)
        elif name in config.schedules:
            s = config.schedules[name]
            person = person_at(s, now, s.zone(zone))
            targets = [person] if person is not None else []
        else:
            targets = [name]
        out.extend(t for t in targets if t not in out)
    return out


def policy_steps(config: NotifyConfig, names: Iterable[str]) -> list[PolicyStep]:
    """The later steps (all but the first) of every policy among ``names``."""
    return [step for name in dict.fromkeys(names) for step in config.escalation_policies.get(name, [])[1:]]


def _error(loc: tuple[Union[str, int], ...], given: Any, message: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": given, "ctx": {"error": ValueError(message)}}


def names_problem(config: NotifyConfig) -> Optional[InitErrorDetails]:
    """A schedule or policy that names what does not exist, loops, or clashes with another name."""
    receivers, schedules, policies = config.receivers, config.schedules, config.escalation_policies
    for name in schedules:
        if name in receivers:
            return _error(("schedules", name), name, f"{name!r} is already a receiver's name; a schedule needs "
                          "a name of its own")
    for name in policies:
        if name in receivers or name in schedules:
            return _error(("escalation_policies", name), name, f"{name!r} is already a receiver's or a "
                          "schedule's name; a policy needs a name of its own")
    for name, s in schedules.items():
        people: Sequence[tuple[tuple[Union[str, int], ...], str]] = [
            *((("schedules", name, "people", i), p) for i, p in enumerate(s.people)),
            *((("schedules", name, "overrides", i, "person"), o.person) for i, o in enumerate(s.overrides))]
        for loc, person in people:
            if person not in receivers:
                known = ", ".join(sorted(receivers)) or "none are defined under receivers:"
                return _error(loc, person, f"unknown receiver {person!r}: a schedule's people are receiver "
                              f"names (known: {known})")
    for name, steps in policies.items():
        if not steps:
            return _error(("escalation_policies", name), steps, "a policy needs at least one step")
        if steps[0].after > 0:
            return _error(("escalation_policies", name, 0, "after"), steps[0].after,
                          "the first step is notified at once: leave after: out or write 0s")
        for i, step in enumerate(steps):
            if i and step.after < steps[i - 1].after:
                return _error(("escalation_policies", name, i, "after"), step.after,
                              "steps come in order: each after: at least the one before")
            for n in step.notify:
                if n in policies:
                    cycle = _cycle(policies, [name])
                    why = f"escalation policy cycle {' -> '.join(cycle)}" if cycle else \
                        f"step names the policy {n!r}"
                    return _error(("escalation_policies", name, i, "notify"), n,
                                  f"{why}: a policy's steps name receivers and schedules, not policies")
                if n not in receivers and n not in schedules:
                    return _error(("escalation_policies", name, i, "notify"), n,
                                  f"unknown receiver or schedule {n!r} (known: {config.known_names(policies=False)})")
    return None


def _cycle(policies: Mapping[str, Sequence[PolicyStep]], path: list[str]) -> Optional[list[str]]:
    for step in policies.get(path[-1], ()):
        for nxt in step.notify:
            if nxt not in policies:
                continue
            if nxt in path:
                return [*path[path.index(nxt):], nxt]
            found = _cycle(policies, [*path, nxt])
            if found:
                return found
    return None
