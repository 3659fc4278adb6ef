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
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

__all__ = ["AlertState", "Severity", "Transition", "TransitionSink", "notifiable", "transition_id"]


class AlertState(str, enum.Enum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


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

    @property
    def key(self) -> str:
        return f"{self.rule}/{self.series}"

    def to_json(self) -> str:
        d: dict[str, Any] = asdict(self)
        d["state"] = self.state.value
        d["previous"] = self.previous.value
        d["severity"] = self.severity.value
        d["labels"] = dict(self.labels)
        d["annotations"] = dict(self.annotations)
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
        )


def transition_id(rule: str, series: str, state: AlertState, since: float) -> str:
    """Deterministic id of a transition: the same change replayed after a crash gets the same id."""
    raw = f"{rule}\x00{series}\x00{state.value}\x00{since:.6f}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def notifiable(t: Transition) -> bool:
    """Whether a person hears of this change (pending and a pending that cleared are silent)."""
    return t.state in (AlertState.FIRING, AlertState.RESOLVED, AlertState.FLAPPING) or t.previous == AlertState.FLAPPING


class TransitionSink(Protocol):
    """Where notifiable transitions go, inside the engine's transaction (the notify Outbox)."""

    def enqueue(self, t: Transition) -> None:
        """Record ``t``; must not commit."""
