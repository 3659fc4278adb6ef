"""Notification delivery: receivers, routes, grouping, silences, escalation and a durable outbox.

The engine enqueues :class:`~alerting.transition.Transition` objects with :class:`Outbox` in the
same SQLite transaction as its state change; the :class:`Dispatcher` turns them into messages.
"""

from __future__ import annotations

from .apprise_sender import AppriseSender
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
from .dispatcher import AlertStatus, Dispatcher, NotifyStatus
from .outbox import Outbox
from .sender import RecordingSender, Sender, SendResult, SentMessage

__all__ = [
    "AlertStatus",
    "AppriseSender",
    "Delivery",
    "Dispatcher",
    "EscalationStep",
    "Grouping",
    "InhibitRule",
    "Match",
    "MissingSecret",
    "MuteWindow",
    "NotifyConfig",
    "NotifyStatus",
    "Outbox",
    "ReceiverUrl",
    "RecordingSender",
    "Route",
    "SendResult",
    "Sender",
    "SentMessage",
    "StaticSilence",
]
