"""Who hears about an alert, and what keeps it quiet: routes, groups, inhibition, silences, mute windows."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Optional

from alerting.transition import Severity, Transition

from .config import Match, MuteWindow, NotifyConfig, matches

__all__ = [
    "ActiveSilence",
    "Quiet",
    "Stage",
    "alert_labels",
    "group_key",
    "inhibiting",
    "mute_active",
    "mute_end",
    "receivers_for",
    "suppression",
]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class ActiveSilence:
    id: str
    match: Match
    starts: float
    ends: float
    by: str
    comment: str


class Stage(str, enum.Enum):
    """The stage that keeps an alert quiet, in Alertmanager's words."""

    SILENCE = "silence"
    INHIBIT = "inhibit"
    MUTE = "mute"  # a time window (Alertmanager's mute_time_intervals)


@dataclass(frozen=True, slots=True)
class Quiet:
    """Why an alert stays quiet now, and until when (None: as long as its cause lasts)."""

    stage: Stage
    reason: str  # what people read: "silence <id>", "inhibited", "mute <name>"
    until: Optional[float] = None


def alert_labels(t: Transition) -> dict[str, str]:
    """The labels routes and silences match on: the rule's labels plus rule, severity, device, sensor, metric."""
    labels = dict(t.labels)
    parts = t.series.split("/")
    if len(parts) == 3:
        labels.setdefault("device", parts[0])
        labels.setdefault("sensor", parts[1])
        labels.setdefault("metric", parts[2])
    labels["rule"] = t.rule
    labels["series"] = t.series
    labels["severity"] = t.severity.value
    return labels


def receivers_for(config: NotifyConfig, labels: Mapping[str, str], notify: Iterable[str]) -> list[str]:
    """The rule's own receivers, then those of the matching routes (first match wins unless ``continue``)."""
    out = list(dict.fromkeys(notify))
    for route in config.routes:
        if matches(route.match, labels):
            out.extend(r for r in route.receivers if r not in out)
            if not route.continue_:
                break
    return out


def group_key(config: NotifyConfig, labels: Mapping[str, str]) -> str:
    """Alerts with the same values of ``grouping.group_by`` share one message per receiver."""
    return json.dumps([labels.get(name, "") for name in config.grouping.group_by], ensure_ascii=False)


def inhibiting(config: NotifyConfig, labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
    """True when a firing alert matches an inhibit rule's source for this target with equal labels."""
    rules = [r for r in config.inhibit if matches(r.target, labels)]
    if not rules:
        return False
    for source in firing:
        if source.get("rule") == labels.get("rule") and source.get("series") == labels.get("series"):
            continue  # an alert never inhibits itself
        for rule in rules:
            if matches(rule.source, source) and all(source.get(k) == labels.get(k) for k in rule.equal):
                return True
    return False


def _local(window: MuteWindow, day: dt.date, at: dt.time) -> float:
    return dt.datetime.combine(day, at, tzinfo=window.zone).timestamp()


def _spans(window: MuteWindow, now: float) -> Iterable[tuple[float, float]]:
    """The window's occurrences (epoch start, end) that begin yesterday or today, local time."""
    today = dt.datetime.fromtimestamp(now, window.zone).date()
    for day in (today - dt.timedelta(days=1), today):
        if _WEEKDAYS[day.weekday()] not in window.weekdays:
            continue
        end_day = day if window.end > window.start else day + dt.timedelta(days=1)
        # computed in local wall time, so a night across a DST change is an hour shorter or longer
        yield _local(window, day, window.start), _local(window, end_day, window.end)


def mute_active(window: MuteWindow, now: float) -> bool:
    """True while ``now`` falls inside one of the window's occurrences."""
    return any(start <= now < end for start, end in _spans(window, now))


def mute_end(window: MuteWindow, now: float) -> Optional[float]:
    """When the occurrence holding ``now`` ends, or None when the window is not active."""
    ends = [end for start, end in _spans(window, now) if start <= now < end]
    return max(ends) if ends else None


def suppression(
    config: NotifyConfig,
    labels: Mapping[str, str],
    severity: Severity,
    now: float,
    silences: Iterable[ActiveSilence],
    firing: Iterable[Mapping[str, str]],
) -> Optional[Quiet]:
    """What keeps this alert quiet now, checked in this order: a silence, an inhibition, a mute window."""
    for s in silences:
        if s.starts <= now < s.ends and matches(s.match, labels):
            return Quiet(Stage.SILENCE, f"silence {s.id}", s.ends)
    if inhibiting(config, labels, firing):
        return Quiet(Stage.INHIBIT, "inhibited")
    for window in config.mute_windows:
        if severity in window.allow_severity or not matches(window.match, labels):
            continue
        end = mute_end(window, now)
        if end is not None:
            return Quiet(Stage.MUTE, f"mute {window.name}", end)
    return None
