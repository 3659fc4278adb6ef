"""An alert's excursion: which way is worse for a rule (how the engine keeps its ``peak``, the worst value),
the ledger rows its transitions make, and what acknowledgements name it by (its ``since``, the episode).

The value compared is the one the rule's condition shows (:meth:`~alerting.conditions.Condition.value`, the
transition's ``value``): the reading for above/below, the aggregate, the rate per minute, the difference,
the seconds of silence... A rule's direction is read once from its spec:

- ``above`` only: the highest value; ``below`` only: the lowest;
- ``above`` and ``below`` both (a band): the value furthest outside the band;
- ``forecast``: the lowest (its value is the time left until the limit is reached: less is worse);
- ``drift``: the value furthest from zero (the difference to its siblings, either way);
- ``all``/``any``: as their first condition (the value shown is the first child's that has one);
- every other condition (nodata, stale, stuck, offline, anomaly, jump, noise, restarts): the highest
  (silence, a ratio, a count: more is worse).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Optional

from alerting.notify.message import removed_message
from alerting.rulespec import ConditionSpec
from alerting.state import AlertRecord
from alerting.transition import AlertState, Transition, transition_id

__all__ = ["ACTIVE", "EPISODE_TOLERANCE", "Acked", "badness", "held", "ledger_rows", "note_id", "removed", "span",
           "worse"]

Badness = Callable[[float], float]


def _up(v: float) -> float:
    return v


def _down(v: float) -> float:
    return -v


def badness(spec: ConditionSpec) -> Badness:
    """A function of a value that is larger the worse the value is, for ``spec``'s condition."""
    group = spec.all or spec.any
    if group:
        return badness(group[0])
    bounds = spec
    for inner in (spec.aggregate, spec.rate):
        if inner is not None:
            bounds = inner  # type: ignore[assignment]  # both carry above/below
    above: Optional[float] = getattr(bounds, "above", None)
    below: Optional[float] = getattr(bounds, "below", None)
    if spec.forecast is not None:
        return _down
    if spec.drift is not None:
        return abs
    if above is not None and below is not None:
        hi, lo = above, below
        return lambda v: max(v - hi, lo - v)
    if below is not None:
        return _down
    return _up


def worse(key: Badness, peak: Optional[float], value: Optional[float]) -> Optional[float]:
    """The worse of ``peak`` and ``value`` (either may be None)."""
    if value is None:
        return peak
    if peak is None or key(value) > key(peak):
        return value
    return peak


#: two episodes (an excursion's ``since``, epoch seconds) closer than this are the same one (it went through
#: JSON, a link's token, a form)
EPISODE_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Acked:
    """What an acknowledgement did: the alert, and the transitions it caused (a CLEARED alert resolved)."""

    record: AlertRecord
    transitions: list[Transition]


def held(last_transition: Optional[str]) -> Optional[Transition]:
    """The alert's last transition (a CLEARED alert's: the excursion waiting for its acknowledgement)."""
    if not last_transition:
        return None
    try:
        return Transition.from_json(last_transition)
    except (ValueError, KeyError, TypeError):
        return None


def note_id(key: str, episode: Optional[float], by: str, text: str) -> str:
    """The id of the note an acknowledgement carries: the same acknowledgement gives the same id."""
    raw = f"{key}\x00{episode}\x00{by}\x00{text}".encode("utf-8", "surrogatepass")
    return "ack-" + hashlib.sha256(raw).hexdigest()[:24]


Row = tuple[str, str, dict[str, object], float]


def ledger_rows(t: Transition, unit: str, latched: bool, acked_by: Optional[str]) -> list[Row]:
    """The ledger row (kind, key, body, at) a transition makes, if any (alerting/ledger.py): ``fired`` when an
    excursion fires (firing or flapping, from neither), ``cleared``, and ``resolved`` after firing, flapping or
    cleared. Pending, and firing after flapping, make none."""
    if t.state in (AlertState.FIRING, AlertState.FLAPPING) and t.previous not in (AlertState.FIRING,
                                                                                   AlertState.FLAPPING):
        return [("fired", t.key, {"rule": t.rule, "series": t.series, "since": t.since, "at": t.at, "value": t.value,
                                  "peak": t.peak, "severity": t.severity.value, "message": t.message, "unit": unit,
                                  "latched": latched}, t.at)]
    if t.state == AlertState.CLEARED:
        return [("cleared", t.key, {"since": t.since, "at": t.at, "peak": t.peak}, t.at)]
    if t.state == AlertState.RESOLVED and t.previous in ACTIVE:
        return [("resolved", t.key, {"since": t.since, "at": t.at, "ended": t.ended, "peak": t.peak,
                                     "acknowledged_by": acked_by}, t.at)]
    return []


def span(rec: AlertRecord, previous: AlertState, state: AlertState,
         at: float) -> tuple[float, Optional[float], Optional[float]]:
    """``since``, ``peak`` and ``ended`` of the transition of ``rec`` from ``previous`` to ``state`` at ``at``."""
    since = rec.pending_since if rec.pending_since is not None else at
    peak, ended = rec.peak, None
    if state in (AlertState.CLEARED, AlertState.RESOLVED) and rec.episode is not None:
        since, ended = rec.episode, (rec.ended if rec.ended is not None else at)
    if previous == AlertState.CLEARED and state == AlertState.RESOLVED:
        last = held(rec.last_transition)  # the cleared excursion's (a new one may be pending meanwhile)
        if last is not None:
            since, peak, ended = last.since, last.peak, last.ended
    return since, peak, ended


def removed(rec: AlertRecord, now: float) -> Optional[Transition]:
    """The transition that resolves an alert whose rule was removed while the engine was down (None: it was
    neither firing, flapping nor cleared)."""
    last = held(rec.last_transition) if rec.state in ACTIVE else None
    if last is None:
        return None
    return dataclasses.replace(last, id=transition_id(rec.rule, rec.series, AlertState.RESOLVED, now),
                               state=AlertState.RESOLVED, previous=rec.state, at=now,
                               message=removed_message(rec.rule, rec.series),
                               ended=last.ended if last.ended is not None else now)


ACTIVE = (AlertState.FIRING, AlertState.FLAPPING, AlertState.CLEARED)
