"""What keeps the rule engine standing and says how it is: task supervision, refusal accounting, its
own health document, and the loop that runs the watchdog and the heartbeat (alerting/watchdog.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Optional

from alerting.heartbeat import Heartbeat
from alerting.notify.outbox import Outbox
from alerting.notify.state import NotifyState, ReceiverFailure
from alerting.state import StateDB
from alerting.transition import Transition
from alerting.watchdog import Watchdog
from vigil.core.backoff import backoff_delay
from vigil.core.clock import Clock

if TYPE_CHECKING:
    from alerting.service import AlertService

__all__ = ["Guard", "guard_parts", "refusal", "supervised"]

log = logging.getLogger(__name__)

# distinct (topic, reason) pairs logged; past it, refusals are only counted (a flood of distinct topics)
_MAX_SAID = 1000
NOTIFY_POLL = 5.0
RESTART_NEWS = 600.0  # seconds a task's restart shows as a problem on the engine's health


async def supervised(name: str, work: Callable[[], Awaitable[None]], restarts: Counter[str],
                     cap: float = 30.0) -> None:
    """Run ``work`` until cancelled; if it fails, log it, count it in ``restarts`` and start it again
    with the one backoff formula (vigil/core/backoff.py), so one failure never takes the whole engine down."""
    attempt = 0
    while True:
        try:
            await work()
            return
        except Exception as exc:
            if getattr(exc, "final", False):  # e.g. PartitionLost: the whole engine stops (alerting/failover.py)
                log.warning("task %s stopped: %s", name, exc)
                raise
            attempt += 1
            restarts[name] += 1
            delay = backoff_delay(attempt, cap)
            log.exception("task %s failed (%d time(s)); starting it again in %.1fs", name, attempt, delay)
            await asyncio.sleep(delay)


class Guard:
    """Refusals, restarts, the watchdog and the heartbeat of one rule engine, and its health snapshot."""

    def __init__(self, clock: Clock, watchdog: Optional[Watchdog] = None, heartbeat: Optional[Heartbeat] = None,
                 failing: Optional[Callable[[], list[ReceiverFailure]]] = None) -> None:
        self.clock = clock
        self.watchdog = watchdog
        self.heartbeat = heartbeat
        self.failing = failing
        self.refused: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()
        self.events = 0
        self.subscriptions_refused: dict[str, str] = {}
        self.firing = 0
        self.notify_failing = 0
        self._said: set[tuple[str, str]] = set()
        self._restarts_seen: dict[str, tuple[int, float]] = {}

    def refuse(self, topic: str, reason: str, detail: str = "", exc: Optional[BaseException] = None) -> None:
        """Count a refused message; log it the first time its topic and reason come together."""
        self.refused[reason] += 1
        key = (topic[:200], reason)
        if key in self._said or len(self._said) >= _MAX_SAID:
            return
        self._said.add(key)
        text = f"refused a message on {topic[:200]!r} ({reason}){': ' + detail[:300] if detail else ''}; " \
               "further ones on this topic for this reason are only counted"
        if exc is not None:
            log.error(text, exc_info=exc)
        else:
            log.warning(text)

    def subscription(self, topic_filter: str, refused: Optional[str]) -> None:
        """Whether the broker refused one of the engine's subscriptions (and why)."""
        if refused is None:
            self.subscriptions_refused.pop(topic_filter, None)
        else:
            if topic_filter not in self.subscriptions_refused:
                log.error("the broker refused the subscription to %s (%s): the engine cannot see those messages; "
                          "grant its account read access (deploy/mosquitto/vigil.acl)", topic_filter, refused)
            self.subscriptions_refused[topic_filter] = refused
        if self.watchdog is not None:
            self.watchdog.cannot_consume(topic_filter, refused)

    def snapshot(self) -> dict[str, Any]:
        """The engine's health document (see vigil/core/health.py): problems and counters."""
        problems = [f"the broker refused the subscription to {f} ({why}): grant the engine's account read access"
                    for f, why in sorted(self.subscriptions_refused.items())]
        mono = time.monotonic()
        for name, n in self.restarts.items():
            if self._restarts_seen.get(name, (0, 0.0))[0] != n:
                self._restarts_seen[name] = (n, mono)
        # a restart is news for a while, not for ever: the counter in the document keeps the total
        problems += [f"task {name} failed and was restarted ({n} time(s) in all): see the engine's log"
                     for name, (n, at) in sorted(self._restarts_seen.items()) if mono - at < RESTART_NEWS]
        out: dict[str, Any] = {"events": self.events, "refused": dict(self.refused), "restarts": dict(self.restarts),
                               "alerts_firing": self.firing, "notify_failing": self.notify_failing}
        w = self.watchdog
        if w is not None:
            now = self.clock.now()
            problems += [p.sentence() for p in w.problems() if p.counts(now) and not p.key.startswith("consumer/")]
            out["pipeline"] = "stalled" if w.firing else "ok"
            out["last_event"] = w.last_event
            out["devices_online"] = sum(1 for on in w.devices.values() if on)
        if self.heartbeat is not None:
            out["heartbeat"] = {"sent": self.heartbeat.sent, "failed": self.heartbeat.failed,
                                "skipped": self.heartbeat.skipped, "last_ok": self.heartbeat.last_ok}
        out["problems"] = problems
        return out

    async def watch(self, publish: Callable[[list[Transition]], None], alerts: Callable[[], int],
                    input_missing: Optional[Callable[[bool], None]] = None) -> None:
        """Once a second: receivers failing (every few seconds), the watchdog's judgement, published;
        ``input_missing(True/False)`` when the watchdog starts or stops knowing the input is missing."""
        polled = float("-inf")
        missing: Optional[bool] = None  # unknown: the first pass reports (also after a restart of this task)
        while True:
            now = self.clock.now()
            self.firing = alerts()
            if self.failing is not None and now - polled >= NOTIFY_POLL:
                polled = now
                try:
                    rows = self.failing()
                except sqlite3.Error as exc:  # busy or locked: next time
                    log.debug("could not read failing receivers: %s", exc)
                else:
                    self.notify_failing = len(rows)
                    if self.watchdog is not None:
                        self.watchdog.receivers_failing(rows)
            if self.watchdog is not None:
                publish(self.watchdog.evaluate())
                stalled = self.watchdog.input_stalled()
                if input_missing is not None and stalled != missing:
                    missing = stalled
                    input_missing(missing)
            await self.clock.sleep(1.0)


def guard_parts(service: AlertService, db: StateDB, clock: Clock) -> None:
    """The watchdog (on partition 0 only: one pipeline alert, not one per engine), the heartbeat, and
    where failing receivers are read."""
    settings = service.settings
    if settings.watchdog.enabled and service.engine.partition[0] == 0:
        service.guard.watchdog = Watchdog(settings.watchdog, clock, state=db, sink=Outbox(db.conn),
                                          receivers=service.pipeline_receivers)
    if settings.heartbeat.url:
        watchdog = service.guard.watchdog
        service.guard.heartbeat = Heartbeat(settings.heartbeat, lambda: watchdog is None or watchdog.healthy, clock)
    if service.dispatcher is not None:
        reader = NotifyState(db.conn, create=False)  # type: ignore[arg-type, unused-ignore]  # NotifyState: sqlite3
        service.guard.failing = lambda: reader.failing(
            service.notify_config.delivery.failing_after if service.notify_config is not None else 3)


def refusal(granted: Any) -> Optional[str]:
    """Why the broker refused a subscription (a SUBACK reason code of 0x80 or above), or None."""
    for code in granted if isinstance(granted, (list, tuple)) else ():
        value = getattr(code, "value", code)
        if isinstance(value, int) and value >= 0x80:
            return str(code) if hasattr(code, "value") else f"reason code {value:#x}"
    return None
