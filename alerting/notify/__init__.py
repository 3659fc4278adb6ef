"""Notification delivery: receivers, routes, grouping, silences, escalation and a durable outbox.

The engine enqueues :class:`~alerting.transition.Transition` objects with :class:`Outbox` in the
same SQLite transaction as its state change; the :class:`Dispatcher` turns them into messages.
"""

from __future__ import annotations

from .config import (
    Delivery,
    EscalationStep,
    Grouping,
    InhibitRule,
    Match,
    MissingSecret,
    MuteWindow,
    NotifyConfig,
    ReceiverUrl,
    Route,
    StaticSilence,
)
from .outbox import Outbox

__all__ = [
    "Delivery",
    "EscalationStep",
    "Grouping",
    "InhibitRule",
    "Match",
    "MissingSecret",
    "MuteWindow",
    "NotifyConfig",
    "Outbox",
    "ReceiverUrl",
    "Route",
    "StaticSilence",
]
