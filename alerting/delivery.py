"""Where the engine meets notification delivery (``alerting.notify``): what the engine's service asks of
the dispatcher, and starting it beside the engine, on the same state file."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Optional, Protocol

from alerting.notify.apprise_sender import AppriseSender
from alerting.notify.config import NotifyConfig
from alerting.notify.dispatcher import Dispatcher, NotifyStatus
from alerting.templates import use_zone
from vigil.core import sqldb
from vigil.core.acklink import load_secret
from vigil.core.clock import Clock

__all__ = ["AlertDispatcher", "make_dispatcher", "warm_apprise"]

log = logging.getLogger(__name__)


class AlertDispatcher(Protocol):
    """The dispatcher as the engine's service talks to it (alerting.notify.Dispatcher is the real one)."""

    def wake(self) -> None:
        """The outbox has news."""

    def acknowledge(self, key: str, by: str, comment: str = "") -> bool:
        """Stop repeats and escalation of alert ``key`` (``rule/series``); False if unknown."""

    def add_silence(self, match: Mapping[str, str], until: float, *, by: str, comment: str = "") -> str:
        """Silence alerts matching ``match`` from now until ``until``; the silence's id (ValueError if invalid)."""

    def expire_silence(self, silence_id: str) -> bool:
        """End a silence now; False if there is none with that id."""

    def status(self) -> NotifyStatus:
        """Active alerts, silences, failing receivers, messages waiting."""

    def reload(self, config: NotifyConfig) -> None:
        """Use the notification configuration of reloaded rules."""

    async def run(self) -> None:
        """Deliver until cancelled."""

    def close(self) -> None:
        """Release the state file."""


def warm_apprise() -> None:
    """Load apprise's plugins now rather than on the first alert (a few hundred ms of its latency)."""
    import apprise

    apprise.Apprise().add("json://127.0.0.1/")


def make_dispatcher(state_path: str, config: NotifyConfig, clock: Clock,
                    zone: Optional[dt.tzinfo] = None, public_url: Optional[str] = None,
                    secret_dir: Optional[str] = None,
                    fence: Optional[Callable[[sqldb.Connection], None]] = None) -> Dispatcher:
    """The notification Dispatcher on the engine's state file, sending through apprise.

    ``zone`` is the site's time zone: for the dispatcher's messages and, through
    :func:`alerting.templates.use_zone`, for the times the rules' message templates write.
    ``public_url`` is the dashboard's address: with it, messages carry signed acknowledgement links, signed
    with the site's link secret (``$VIGIL_LINK_SECRET`` or ``link-secret`` in ``secret_dir``, the site's data
    directory, where the dashboard reads it; default: beside the state file).
    ``fence``: see :class:`Dispatcher` (alerting/failover.py fences delivery by partition 0's lease).
    """
    use_zone(zone)

    def connect() -> sqldb.Connection:
        conn = sqldb.connect(state_path, application_name="vigil-notify")
        if sqldb.dialect(conn) == "sqlite":
            # As for the engine's own connection: WAL with synchronous=NORMAL survives a process crash
            # without an fsync per commit (several per notification: docs/proof.md, Figures behind the code); a power
            # cut may lose the last commits, which delivery turns into a resend, never into a loss.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the engine checkpoints in a thread
        return conn

    if secret_dir is None and sqldb.is_postgres(state_path):
        secret_dir = "."  # no state file to sit beside: the working directory (vigil.yaml's data_dir is the site's)
    secret = load_secret(Path(secret_dir or Path(state_path).resolve().parent)) if public_url else None
    if not public_url and config.receivers:
        log.info("notifications carry no acknowledgement link: set dashboard.public_url to the address people "
                 "open the dashboard at (docs/notifications.md)")
    return Dispatcher(connect, config, AppriseSender(), clock, zone=zone, public_url=public_url, link_secret=secret,
                      fence=fence)
