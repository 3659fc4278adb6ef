"""The courier: sends recorded messages, one row per URL, retries with backoff, and owns the crash window.

Before a send its row is marked ``sending`` (committed), after it ``sent``. A crash in between
(SIGKILL, power loss) leaves a row whose outcome nobody knows: ``delivery.in_doubt: resend`` (the
default) sends it again with a note that it may be a duplicate, because a missed freezer alert
costs more than a second message; ``skip`` keeps strict at-most-once and logs what may be lost.
A graceful stop waits for sends in flight and records them, so it leaves nothing in doubt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Mapping
from typing import Optional

from alerting.transition import Severity
from vigil.core.backoff import backoff_delay
from vigil.core.clock import Clock

from .config import Delivery, MissingSecret, ReceiverUrl
from .sender import Sender, SendResult
from .state import DeliveryRow, NotifyState

__all__ = ["Courier"]

log = logging.getLogger(__name__)

_IN_DOUBT_NOTE = "(Vigil stopped while sending this message; you may have received it already.)\n"


class Courier:
    """Sends due deliveries as tasks of the caller's TaskGroup, at most ``max_concurrent`` at once."""

    def __init__(self, state: NotifyState, sender: Sender, clock: Clock, on_done: Callable[[], None], *,
                 env: Optional[Mapping[str, str]] = None, rng: Optional[random.Random] = None,
                 max_concurrent: int = 8) -> None:
        self._state = state
        self._sender = sender
        self._clock = clock
        self._on_done = on_done
        self._env = env
        self._rng = rng or random.Random()
        self._max_concurrent = max(1, max_concurrent)
        self._in_flight: set[int] = set()
        self._short_of_slots = False  # the last start left due deliveries for want of a free slot
        # outcomes of sends that could not be recorded (the database away then), by delivery id: written by
        # :meth:`record_late` once it answers, so a message that went out is not sent again as in doubt
        self._unrecorded: dict[int, Callable[[], None]] = {}

    def recover(self, cfg: Delivery, now: float) -> None:
        """Deal with sends a crash cut off (see the module doc): before the first ``start``, and whenever the
        outcome of a 'sending' mark may be unknown (the database lost mid-commit, a tenure taken over from
        another dispatcher); this courier's own sends in flight are not in doubt."""
        resend = cfg.in_doubt == "resend"
        with self._state.transaction(fenced=True):
            found = self._state.recover_in_doubt(resend, now, busy=self._in_flight | self._unrecorded.keys())
        for _, url, title in found:
            if resend:
                log.warning("sending %r to %s again: Vigil stopped during its send, it may arrive twice", title, url)
            else:
                log.error("not sending %r to %s again: Vigil stopped during its send, it may be lost", title, url)

    def record_late(self) -> None:
        """Record the outcomes that could not be recorded when their sends ended (raises while the database is
        still away; what is left is tried again on the next call)."""
        for delivery_id, write in list(self._unrecorded.items()):
            with self._state.transaction():
                write()
            del self._unrecorded[delivery_id]

    def _record(self, d: DeliveryRow, write: Callable[[], None]) -> bool:
        try:
            with self._state.transaction():
                write()
        except self._state.errors as exc:  # kept, and written once the database answers (record_late)
            self._unrecorded[d.id] = write
            log.error("could not record the delivery of %r to %s yet (%s); it is recorded once the database answers",
                      d.title, d.url_masked, exc)
            return False
        return True

    def start(self, tg: asyncio.TaskGroup, cfg: Delivery) -> int:
        """Start sends up to the concurrency limit; returns how many started."""
        free = self._max_concurrent - len(self._in_flight)
        if free <= 0:
            return 0
        limit = free + len(self._in_flight)
        due = self._state.due_deliveries(self._clock.now(), limit=limit)
        self._short_of_slots = len(due) >= limit  # more may wait for a free slot: a send that ends wakes the dispatcher
        ready: list[tuple[DeliveryRow, str]] = []
        for d in due:
            if d.id in self._in_flight or len(ready) >= free:
                continue
            try:
                ready.append((d, ReceiverUrl(d.url).resolve(self._env)))
            except MissingSecret as exc:
                self._failed(d, str(exc), cfg)
        if not ready:
            return 0
        # one commit marks the whole batch 'sending': from here a crash leaves them in doubt; a delivery another
        # dispatcher on the database took meanwhile is left to it
        with self._state.transaction(durable=True, fenced=True):
            ready = [(d, url) for d, url in ready if self._state.mark_sending(d.id)]
        # a slow receiver holds only its own sends: planning and other receivers go on
        for d, url in ready:
            self._in_flight.add(d.id)
            tg.create_task(self._deliver_one(d, url, cfg), name=f"vigil-notify-{d.id}")
        return len(ready)

    async def _deliver_one(self, d: DeliveryRow, url: str, cfg: Delivery) -> None:
        again = True
        try:
            again = await self._send_and_record(d, url, cfg)
        finally:
            self._in_flight.discard(d.id)
            # a send recorded as sent changes no plan (the next pass was planned without it), unless sends wait
            if again or self._short_of_slots:
                self._on_done()

    async def _send_and_record(self, d: DeliveryRow, url: str, cfg: Delivery) -> bool:
        """Send and record the outcome; whether the dispatcher must plan again (a retry, an unrecorded outcome)."""
        body = _IN_DOUBT_NOTE + d.body if d.in_doubt else d.body
        send = asyncio.ensure_future(self._sender.send(
            [url], d.title, body, severity=Severity(d.severity), resolved=d.resolved))
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(send)
                break
            except asyncio.CancelledError:
                if send.cancelled():
                    raise
                cancelled = True  # finish and record the send in flight, then stop
            except Exception as exc:  # a Sender that raises must not stop delivery; its text may hold secrets
                result = SendResult(False, f"the sender raised {type(exc).__name__}")
                break
        if result.ok:
            recorded = self._record(d, functools.partial(self._state.mark_sent, d.id, self._clock.now()))
            log.info("sent %r to %s (%s)", d.title, d.receiver, d.url_masked)
        else:
            self._failed(d, result.error or "failed", cfg)
            recorded = False
        if cancelled:
            raise asyncio.CancelledError()
        return not recorded

    def _failed(self, d: DeliveryRow, error: str, cfg: Delivery) -> None:
        attempts = d.attempts + 1
        delay = backoff_delay(attempts, cfg.retry_max, first=cfg.retry_initial, rng=self._rng)
        now = self._clock.now()
        self._record(d, functools.partial(self._state.mark_failed, d.id, error, now + delay, attempts, now))
        # an error when a receiver starts to count as failing, and every tenth attempt after that
        keeps_failing = attempts >= cfg.failing_after and (attempts - cfg.failing_after) % 10 == 0
        log.log(logging.ERROR if keeps_failing else logging.WARNING,
                "receiver %s (%s) failed %d time(s): %s; retrying in %.0fs",
                d.receiver, d.url_masked, attempts, error, delay)
