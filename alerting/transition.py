"""What the rule engine hands to notification delivery: one alert's change of state.

The engine (``alerting.engine``) produces a :class:`Transition` for every change of an
alert (one rule, one series) and enqueues it in the notification outbox
(``alerting.notify``) inside the same SQLite transaction that records the new state, so a
crash can neither lose a notification nor send one twice.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Protocol

__all__ = ["SENSOR_KINDS", "AlertState", "Severity", "Transition", "TransitionSink", "notifiable", "sensor_reason",
           "transition_id"]


class AlertState(str, enum.Enum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"
    # a latched alert whose condition cleared: the excursion is over, nobody acknowledged it yet
    CLEARED = "cleared"


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Transition:
    """Alert ``rule`` on ``series`` went from ``previous`` to ``state`` at ``at`` (epoch seconds).

    ``key`` identifies the alert (rule + series); ``id`` identifies this transition and is
    what delivery deduplicates on. ``message`` is the rule's template rendered when the change was
    emitted (:func:`alerting.notify.message.alert_message`).
    ``notify`` names the rule's receivers (routes may add more by severity and labels).
    ``reported`` is set when the engine learned of the change well after ``at`` (late readings,
    a catch-up after an outage): when it did.
    ``reason``: why a sensor-health alert holds, as data (:func:`sensor_reason`); published
    as a ``reason`` object only when there is one, so older readers see the payload they knew.
    ``peak``: the worst value of the excursion so far (a latched or any firing alert); ``ended``: when the
    condition cleared (CLEARED, and RESOLVED after firing). Both are published only when set.
    """

    id: str
    rule: str
    series: str
    state: AlertState
    previous: AlertState
    at: float
    severity: Severity
    message: str
    since: float
    value: Optional[float] = None
    labels: tuple[tuple[str, str], ...] = ()
    notify: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = field(default=())
    reported: Optional[float] = None
    reason: tuple[tuple[str, Any], ...] = ()
    peak: Optional[float] = None
    ended: Optional[float] = None

    @property
    def key(self) -> str:
        return f"{self.rule}/{self.series}"

    def to_json(self) -> str:
        # the fields as they are (json writes a tuple as an array): dataclasses.asdict's deep copy was most of the
        # cost of a transition's three encodings (outbox, retained state, ledger)
        d: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        d["state"] = self.state.value
        d["previous"] = self.previous.value
        d["severity"] = self.severity.value
        d["labels"] = dict(self.labels)
        d["annotations"] = dict(self.annotations)
        if self.reason:
            d["reason"] = dict(self.reason)
        else:
            del d["reason"]
        for optional in ("peak", "ended"):
            if d[optional] is None:
                del d[optional]
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Transition:
        d = json.loads(text)
        return cls(
            id=d["id"],
            rule=d["rule"],
            series=d["series"],
            state=AlertState(d["state"]),
            previous=AlertState(d["previous"]),
            at=float(d["at"]),
            severity=Severity(d["severity"]),
            message=d["message"],
            since=float(d["since"]),
            value=d.get("value"),
            labels=tuple(sorted(d.get("labels", {}).items())),
            notify=tuple(d.get("notify", ())),
            annotations=tuple(sorted(d.get("annotations", {}).items())),
            reported=None if d.get("reported") is None else float(d["reported"]),
            reason=tuple((d.get("reason") or {}).items()),
            peak=None if d.get("peak") is None else float(d["peak"]),
            ended=None if d.get("ended") is None else float(d["ended"]),
        )


_FIELDS = tuple(f.name for f in fields(Transition))


def transition_id(rule: str, series: str, state: AlertState, since: float) -> str:
    """Deterministic id of a transition: the same change replayed after a crash gets the same id."""
    raw = f"{rule}\x00{series}\x00{state.value}\x00{since:.6f}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def notifiable(t: Transition) -> bool:
    """Whether a person hears of this change (pending and a pending that cleared are silent)."""
    return t.state in (AlertState.FIRING, AlertState.RESOLVED, AlertState.FLAPPING, AlertState.CLEARED) \
        or t.previous == AlertState.FLAPPING


class TransitionSink(Protocol):
    """Where notifiable transitions go, inside the engine's transaction (the notify Outbox)."""

    def enqueue(self, t: Transition) -> None:
        """Record ``t``; must not commit."""


SENSOR_KINDS = ("stale", "stuck", "forecast", "jump", "noise", "drift", "restarts")


def _num(v: Any) -> Optional[float]:
    # the conditions' numbers may be numpy's (np.float64 and np.float32 are numbers.Real)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        return None
    return float(v)


def sensor_reason(kinds: Sequence[str], facts: Mapping[str, Any], value: Optional[float], at: float,
                  unit: str) -> tuple[tuple[str, Any], ...]:
    """Why a sensor-health alert holds, as data, for the ``reason`` of its transitions on ``<root>/alerts/...``.

    The message is the rule's template in words; a dashboard wants the facts behind it, to say briefly and in
    its viewer's time zone why a sensor is flagged ("stuck since 03:12", "no reading for 6 min (usually every
    1 min)"). From what the condition found (``Condition.facts``) and the transition's value and time, only
    finite numbers are kept, under fixed names (times in epoch seconds, durations in seconds):

    - ``stale``: ``last`` (when the latest reading arrived), ``interval`` (the learned usual interval; absent
      while none was learned), ``limit``
    - ``stuck``: ``since`` (when the still run began), ``value`` (the reading), ``limit``
    - ``forecast``: ``threshold``, ``reach_at`` (when it is expected to be reached), ``rate`` (per minute)
    - ``jump``: ``from`` (the last plausible reading), ``to`` (the reading), ``elapsed``
    - ``noise``: ``spread`` (recent), ``usual`` (the rest of the window), ``ratio``
    - ``drift``: ``difference`` (to its siblings now), ``baseline`` (before they parted), ``rate`` (per day)
    - ``restarts``: ``count`` (reboots within the rule's window), ``last`` (when the latest one was seen)

    and ``unit`` when the series has one. ``kinds`` is the rule's ``ConditionSpec.kinds()``; any other rule
    (a compound one too) has no reason: ().
    """
    if len(kinds) != 1 or kinds[0] not in SENSOR_KINDS:
        return ()
    kind = kinds[0]
    f = facts
    v = _num(value)
    if kind == "stale":
        fields = {"last": None if v is None else at - v, "interval": f.get("interval"), "limit": f.get("limit")}
    elif kind == "stuck":
        fields = {"since": f.get("stuck_since"), "value": v, "limit": f.get("limit")}
    elif kind == "forecast":
        eta = _num(f.get("eta"))
        fields = {"threshold": f.get("threshold"), "reach_at": None if eta is None else at + eta, "rate": f.get("rate")}
    elif kind == "jump":
        fields = {"from": f.get("jumped_from"), "to": v, "elapsed": f.get("elapsed")}
    elif kind == "drift":
        fields = {"difference": f.get("difference"), "baseline": f.get("baseline"), "rate": f.get("rate")}
    elif kind == "restarts":
        fields = {"count": v, "last": f.get("last_restart")}
    else:
        fields = {"spread": f.get("spread"), "usual": f.get("usual"), "ratio": v}
    out: list[tuple[str, Any]] = [("kind", kind)]
    out += [(k, n) for k, n in ((k, _num(x)) for k, x in fields.items()) if n is not None]
    if unit:
        out.append(("unit", unit))
    return tuple(out)
