"""Sends queued readings to the broker and removes them when it acknowledges them.

After a (re)connect, everything already queued is the backlog; it drains oldest first at
``drain_rate`` readings a second while sampling goes on. By default readings keep their order
per sensor all the way (the new ones queue behind the backlog), because consumers such as the
rule engine take the last reading received as the current value. With ``live_first`` the
readings taken since the connect go out at once instead, interleaved with the backlog, so a
long outage does not delay today's values behind yesterday's; each of the two streams keeps
its order, and consumers must order by ``ts``. At most ``max_inflight`` publishes wait for
their PUBACK (paho's packet ids are 16-bit).
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from vigil.core.clock import Clock

from .queue import QueuedReading, ReadingQueue

__all__ = ["Forwarder", "PublishFn"]

log = logging.getLogger(__name__)

# publish(topic, payload) -> the message id to expect an acknowledgement for, or None if not sent.
PublishFn = Callable[[str, bytes], Optional[int]]


class Forwarder:
    """The link's side of the queue: what to send next and what the broker has taken."""

    def __init__(self, queue: ReadingQueue, clock: Clock, max_inflight: int = 100, drain_rate: float = 20.0,
                 live_first: bool = False) -> None:
        self.queue = queue
        self.clock = clock
        self.max_inflight = max_inflight
        self.drain_rate = drain_rate
        self.live_first = live_first
        self.inflight: dict[int, int] = {}  # message id -> queue row id
        self.sent = 0
        self.rejected = 0
        self._acked: list[int] = []
        self._live_mark = 0
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._backlog_done = True
        self._tokens = 0.0
        self._last_refill = clock.monotonic()

    def connected(self) -> None:
        """A new session: nothing is in flight; all that is queued now is the backlog."""
        self.inflight.clear()
        self._live_mark = self.queue.committed_id()
        self._live_cursor = self._live_mark
        self._backlog_cursor = 0
        self._backlog_done = self.queue.depth == 0
        self._tokens = max(1.0, self.drain_rate)  # a one-second burst, then the steady rate
        self._last_refill = self.clock.monotonic()
        if not self._backlog_done:
            log.info("sending %d buffered readings at up to %g a second", self.queue.depth, self.drain_rate)

    def disconnected(self) -> None:
        """What was in flight was not acknowledged: it stays queued and goes out again."""
        self.flush_acks()
        self.inflight.clear()

    @property
    def backlog_pending(self) -> bool:
        return not self._backlog_done

    def acked(self, mid: int, ok: bool = True) -> None:
        """The broker answered message ``mid`` (from paho's on_publish); ``ok=False`` if it refused it."""
        row = self.inflight.pop(mid, None)
        if row is None:
            return
        if not ok:
            self.rejected += 1
        self._acked.append(row)

    def flush_acks(self) -> None:
        acked, self._acked = self._acked, []
        self.queue.remove(acked)

    def pump(self, publish: PublishFn) -> int:
        """Publish what may go now; returns how many were sent."""
        self.flush_acks()
        sent = 0
        now = self.clock.monotonic()
        self._tokens = min(max(1.0, self.drain_rate), self._tokens + (now - self._last_refill) * self.drain_rate)
        self._last_refill = now
        committed = self.queue.committed_id()
        if not self.live_first and not self._backlog_done:
            # In order: the backlog reaches up to the newest reading; live ones wait their turn.
            return self._drain(committed, publish)
        room = self.max_inflight - len(self.inflight)
        if room > 0 and committed > self._live_cursor:
            for item in self.queue.fetch(self._live_cursor, committed, room):
                if not self._send(item, publish):
                    return sent
                self._live_cursor = item.id
                sent += 1
        if not self._backlog_done:
            sent += self._drain(self._live_mark, publish)
        return sent

    def _drain(self, up_to: int, publish: PublishFn) -> int:
        """Send backlog rows up to ``up_to`` as the rate allows; notice when it is all sent."""
        sent = 0
        room = min(self.max_inflight - len(self.inflight), int(self._tokens))
        if room <= 0:
            return sent
        batch = self.queue.fetch(self._backlog_cursor, up_to, room)
        for item in batch:
            if not self._send(item, publish):
                return sent
            self._backlog_cursor = item.id
            self._tokens -= 1
            sent += 1
        if len(batch) < room:
            self._backlog_done = True
            if not self.live_first:
                self._live_cursor = self._backlog_cursor
            log.info("buffered readings sent")
        return sent

    def _send(self, item: QueuedReading, publish: PublishFn) -> bool:
        mid = publish(item.topic, item.payload)
        if mid is None:
            return False
        self.inflight[mid] = item.id
        self.sent += 1
        return True
