"""The text a person receives: the message of one alert's change, and one alert or a group of them in one
notification."""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerting.templates import MessageTemplate, fmt_duration, fmt_time
from alerting.transition import AlertState, Severity, Transition
from vigil.core.durations import format_duration
from vigil.core.sitetime import format_time, format_value, precision_of

__all__ = ["ACTION", "Item", "Kind", "Message", "alert_message", "removed_message", "render"]

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def alert_message(template: MessageTemplate, t: Transition, *, device: str, sensor: str, metric: str, unit: str,
                  labels: Mapping[str, str], link: str, facts: Mapping[str, Any] | None = None) -> str:
    """The message of change ``t``: its rule's ``template`` on what the change says and the series it
    happened to, with a note when the engine learned of it late (``t.reported``). ``facts``: what the
    condition found (``Condition.facts``), offered beside the usual variables, which they never replace."""
    message = template.render({
        **(facts or {}),
        "rule": t.rule, "series": t.series, "device": device, "sensor": sensor, "metric": metric, "value": t.value,
        "unit": unit, "state": t.state.value, "previous": t.previous.value, "severity": t.severity.value,
        "since": fmt_time(t.since), "since_ts": t.since, "at": fmt_time(t.at), "duration": fmt_duration(t.at - t.since),
        "labels": dict(labels), "link": link,
    })
    if t.reported is not None:
        message += f" (reported late: it happened at {fmt_time(t.at)}, Vigil learned of it at {fmt_time(t.reported)})"
    return message


def removed_message(rule: str, series: str) -> str:
    """The message that resolves an alert whose rule was removed."""
    return f"{rule}: the rule was removed; {series} is no longer watched"


class Kind(str, enum.Enum):
    FIRING = "firing"
    REPEAT = "repeat"
    ESCALATION = "escalation"
    FLAPPING = "flapping"
    RESOLVED = "resolved"
    # a latched alert's condition cleared: back in range, still needs acknowledgement
    CLEARED = "cleared"


# the kinds that ask a person to act: they carry an acknowledgement link when the dashboard's URL is known
ACTION = (Kind.FIRING, Kind.REPEAT, Kind.ESCALATION, Kind.CLEARED)


_WORD = {
    Kind.FIRING: "FIRING",
    Kind.REPEAT: "FIRING",
    Kind.ESCALATION: "ESCALATED",
    Kind.FLAPPING: "FLAPPING",
    Kind.RESOLVED: "RESOLVED",
    Kind.CLEARED: "CLEARED",
}


@dataclass(frozen=True, slots=True)
class Item:
    """One alert's news for one receiver; ``fired_at`` is when its firing began."""

    kind: Kind
    transition: Transition
    fired_at: float


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    severity: Severity
    resolved: bool


def _headline(item: Item) -> str:
    t = item.transition
    return f"[{_WORD[item.kind]} {t.severity.value}] {t.rule} {t.series}"


def _value(t: Transition, value: float) -> str:
    unit = dict(t.reason).get("unit")
    text = format_value(value, precision_of(dict(t.labels)))
    return f"{text} {unit}" if isinstance(unit, str) and unit else text


def _excursion(t: Transition, zone: dt.tzinfo | None) -> str:
    """``back in range at <time> after 42m, peak -9.1``: what a cleared or ended excursion was."""
    ended = t.ended if t.ended is not None else t.at
    text = f"back in range at {format_time(ended, zone)} after {format_duration(max(0.0, ended - t.since))}"
    return text + (f", peak {_value(t, t.peak)}" if t.peak is not None else "")


def _details(item: Item, now: float, zone: dt.tzinfo | None, acked_by: str | None = None) -> list[str]:
    t = item.transition

    def _when(ts: float) -> str:
        return format_time(ts, zone)

    lines = [t.message] if t.message else []
    if item.kind is Kind.RESOLVED:
        if t.previous is AlertState.CLEARED:
            who = f"; acknowledged by {acked_by}" if acked_by else "; acknowledged"
            lines.append(f"It is over: {_excursion(t, zone)}{who}.")
            return lines
        lines.append(f"Fired for {format_duration(max(0.0, t.at - item.fired_at))}, "
                     f"from {_when(item.fired_at)} to {_when(t.at)}.")
        if t.peak is not None:
            lines.append(f"Peak: {_value(t, t.peak)}")
        return lines
    if t.state is AlertState.CLEARED:
        text = _excursion(t, zone)
        lines.append(f"{text[0].upper()}{text[1:]}; still needs acknowledgement.")
        if item.kind is Kind.REPEAT:
            lines.append("Reminder: nobody acknowledged it yet.")
        elif item.kind is Kind.ESCALATION:
            lines.append(f"Nobody acknowledged it in {format_duration(max(0.0, now - item.fired_at))}; "
                         "escalated to you.")
        return lines
    if t.value is not None:
        lines.append(f"Value: {_value(t, t.value)}")
    if t.peak is not None and t.peak != t.value:
        lines.append(f"Peak: {_value(t, t.peak)}")
    lines.append(f"Firing since {_when(item.fired_at)} ({format_duration(max(0.0, now - item.fired_at))}).")
    if item.kind is Kind.REPEAT:
        lines.append("Still firing and not acknowledged.")
    elif item.kind is Kind.ESCALATION:
        lines.append(f"Nobody acknowledged it in {format_duration(max(0.0, now - item.fired_at))}; escalated to you.")
    elif item.kind is Kind.FLAPPING:
        lines[-1] = "It changes state too often; no more messages until it settles."
    return lines


def render(items: Sequence[Item], now: float, zone: dt.tzinfo | None = None, *,
           links: Mapping[str, str] | None = None, acked: Mapping[str, str] | None = None) -> Message:
    """One message for one or more items of the same group; times in ``zone`` (default: the server's), named.

    ``links``: an acknowledgement link per alert key, added under each item that asks for action;
    ``acked``: who acknowledged an alert, said when it is over.
    """
    if not items:
        raise ValueError("nothing to render")

    def lines(item: Item) -> list[str]:
        key = item.transition.key
        out = _details(item, now, zone, (acked or {}).get(key))
        link = (links or {}).get(key) if item.kind in ACTION else None
        return [*out, f"Acknowledge: {link}"] if link else out

    severity = max((i.transition.severity for i in items), key=_RANK.__getitem__)
    resolved = all(i.kind is Kind.RESOLVED for i in items)
    if len(items) == 1:
        return Message(_headline(items[0]), "\n".join(lines(items[0])), severity, resolved)
    counts = Counter(_WORD[i.kind] for i in items)
    summary = ", ".join(f"{word} {n}" for word, n in counts.items())
    rules = list(dict.fromkeys(i.transition.rule for i in items))
    title = f"[{summary}] {', '.join(rules[:3])}{' ...' if len(rules) > 3 else ''} ({len(items)} alerts)"
    blocks = []
    for item in items:
        detail = "\n".join(f"  {line}" for line in lines(item))
        blocks.append(f"- {_headline(item)}\n{detail}" if detail else f"- {_headline(item)}")
    return Message(title, "\n".join(blocks), severity, resolved)
