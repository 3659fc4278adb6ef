"""Notification delivery: receivers, routes, grouping, silences, escalation and a durable outbox.

The engine enqueues :class:`~alerting.transition.Transition` objects with :class:`Outbox` in the
same SQLite transaction as its state change; the :class:`Dispatcher` turns them into messages,
and its courier sends them through a :class:`Sender` (:class:`AppriseSender` for real).

Errors: configuration mistakes are pydantic ``ValidationError`` with a sentence per key;
:class:`MissingSecret` names an unset ``${VAR}`` of a receiver URL; a failed
send is a :class:`SendResult` with ``ok=False``, never an exception, and is retried.
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
from .state import ReceiverFailure

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
    "ReceiverFailure",
    "ReceiverUrl",
    "RecordingSender",
    "Route",
    "SendResult",
    "Sender",
    "SentMessage",
    "StaticSilence",
]
