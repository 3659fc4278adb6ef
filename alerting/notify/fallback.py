"""Fallback receivers: a message whose receiver keeps failing goes to the receiver's ``fallback:`` instead.

A receiver counts as failing from its first failed attempt until its next success (``notify_channels``).
A message none of whose URLs delivered it falls back once the receiver has been failing for ``after``,
or once it failed ``attempts`` times. Passing it on is one transaction: the copies for the fallback
receivers are inserted and the message is marked as passed on together, so a crash (SIGKILL, power
loss) before it leaves the message to fall back after the restart, and one after it never repeats it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid

from vigil.core.durations import format_duration
from vigil.core.sitetime import format_time

from .config import NotifyConfig
from .receiver_options import Fallback
from .state import FailedMessage, NotifyState

__all__ = ["fall_back"]

log = logging.getLogger(__name__)


def fall_back(state: NotifyState, config: NotifyConfig, now: float, zone: dt.tzinfo | None = None) -> float:
    """Pass on every failing message that is due; returns when the next one is due (``inf``: none waits).

    Times in the note and the log are in ``zone`` (the site's; default the server's), named.
    """
    if not config.fallbacks:
        return math.inf
    failed = state.failed_messages(list(config.fallbacks))
    if not failed:
        return math.inf
    next_at = math.inf
    with state.transaction(fenced=True):
        for m in failed:
            spec = config.fallbacks[m.receiver]
            due = _due(spec, m, now)
            if due > now:
                next_at = min(next_at, due)
            else:
                _pass_on(state, config, spec, m, now, zone)
    return next_at


def _due(spec: Fallback, m: FailedMessage, now: float) -> float:
    due = math.inf if spec.wait is None else m.failing_since + spec.wait
    if spec.attempts is not None and m.attempts >= spec.attempts:
        due = min(due, now)
    return due


def _pass_on(state: NotifyState, config: NotifyConfig, spec: Fallback, m: FailedMessage, now: float,
             zone: dt.tzinfo | None) -> None:
    since = format_time(m.failing_since, zone)
    note = (f"(Sent to you because {m.receiver} ({m.url_masked}) has failed since {since} "
            f"({format_duration(max(0.0, now - m.failing_since))}, {m.attempts} attempt(s) for this message; "
            f"last error: {m.last_error[:200]}).)\n")
    keys = json.loads(m.keys)
    for name in spec.fallback:
        message_id = uuid.uuid4().hex  # each fallback receiver's copy may itself fall back further
        for url in config.receivers.get(name, []):
            state.add_delivery(name, url.template, url.masked, m.title, note + m.body, m.severity, m.resolved,
                               keys, now, message_id)
    state.mark_fell_back(m.message, spec.keep_trying)
    log.warning("receiver %s (%s) has failed since %s (%d attempt(s): %s): %r goes to %s%s",
                m.receiver, m.url_masked, since, m.attempts, m.last_error[:200], m.title, ", ".join(spec.fallback),
                "; it is still retried there" if spec.keep_trying else " instead")
