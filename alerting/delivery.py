"""Starting notification delivery (``alerting.notify``) beside the engine, on the same state file."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from alerting.rules import RuleSet
from vigil.core.clock import Clock

__all__ = ["make_dispatcher", "warm_apprise"]

log = logging.getLogger(__name__)


def warm_apprise() -> None:
    """Load apprise's plugins now rather than on the first alert (a few hundred ms of its latency)."""
    import apprise

    apprise.Apprise().add("json://127.0.0.1/")


def make_dispatcher(state_path: str, rules: RuleSet, clock: Clock, sender: Any, zone: Any = None) -> Any:
    """The notification Dispatcher (alerting.notify), or None when this install has none yet.

    ``zone`` is the site's time zone: for the dispatcher's messages and, through
    :func:`alerting.templates.use_zone`, for the times the rules' message templates write.
    """
    from alerting.templates import use_zone

    use_zone(zone)
    try:
        from alerting.notify.dispatcher import Dispatcher
    except ImportError:
        log.warning("alerting.notify.dispatcher is not available: alert states are published, nothing is sent")
        return None
    if sender is None:
        from alerting.notify.apprise_sender import AppriseSender

        sender = AppriseSender()
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(state_path, check_same_thread=False)
        # As for the engine's own connection: WAL with synchronous=NORMAL survives a process crash
        # without an fsync per commit (several per notification: docs/proof.md, Figures behind the code); a power cut
        # may lose the last commits, which delivery turns into a resend, never into a loss.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the engine checkpoints in a thread
        return conn

    return Dispatcher(connect, rules.notify, sender, clock, zone=zone)
