"""Getting events durable: into the store, or into the disk spool while the store is down.

``write`` returns only once every event is stored or spooled (so the caller may acknowledge
the MQTT messages). While anything waits in the spool, new batches go behind it, so each
series is written in order. ``drain`` (a background task) empties the spool when the store is
back, retrying with capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from vigil.event import Event
from vigil.mqtt import backoff_delay

from .metrics import Metrics
from .spool import Spool
from .stores import Store, StoreRejected, StoreUnavailable

__all__ = ["StoreWriter"]

log = logging.getLogger(__name__)


class StoreWriter:
    """Writes event batches to a store, falling back to a bounded disk spool."""

    def __init__(self, store: Store, spool: Spool, metrics: Metrics, *, backoff_cap: float = 30.0) -> None:
        self.store = store
        self.spool = spool
        self.metrics = metrics
        self.backoff_cap = backoff_cap
        self._wake = asyncio.Event()
        self._spooling = len(spool) > 0
        if self._spooling:
            log.warning("%d events wait in the spool from before; writing them first", spool.events)
            self._wake.set()

    async def write(self, events: Sequence[Event]) -> list[tuple[Event, str]]:
        """Store or spool ``events``; returns those the store refused, each with the reason."""
        if not events:
            return []
        if self._spooling:
            await self._to_spool(events)
            return []
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.store.write, events)
        except StoreUnavailable as exc:
            log.warning("store unavailable, spooling readings to %s until it is back: %s", self.spool.path, exc)
            self._spooling = True
            await self._to_spool(events)
            return []
        except StoreRejected:
            return await self._isolate(events)
        self.metrics.observe_store(time.perf_counter() - started, len(events))
        return []

    async def _to_spool(self, events: Sequence[Event]) -> None:
        dropped = await asyncio.to_thread(self.spool.put, events)
        self.metrics.inc("spooled", len(events))
        if dropped:
            self.metrics.inc("spool_dropped", dropped)
        self._wake.set()

    async def _isolate(self, events: Sequence[Event]) -> list[tuple[Event, str]]:
        """The store refused the batch: write one by one to find the events it refuses."""
        refused = []
        for e in events:
            try:
                await asyncio.to_thread(self.store.write, [e])
            except StoreRejected as exc:
                refused.append((e, str(exc)))
            except StoreUnavailable:
                self._spooling = True
                await self._to_spool([e])
        self.metrics.inc("stored", len(events) - len(refused))
        return refused

    async def drain(self) -> None:
        """Background task: empty the spool into the store whenever it has something."""
        attempt = 0
        while True:
            await self._wake.wait()
            item = await asyncio.to_thread(self.spool.peek)
            if item is None:
                if self._spooling:
                    log.info("store is back: spool empty, writing directly again")
                self._spooling = False
                self._wake.clear()
                continue
            batch_id, events = item
            try:
                await asyncio.to_thread(self.store.write, events)
            except StoreUnavailable as exc:
                attempt += 1
                delay = backoff_delay(attempt, self.backoff_cap)
                log.debug("store still unavailable (%s); %d events wait; next try in %.1fs", exc,
                          self.spool.events, delay)
                await asyncio.sleep(delay)
                continue
            except StoreRejected as exc:
                log.error("store refused %d spooled events (%s); dead-lettering is not possible from the "
                          "spool, dropping them", len(events), exc)
                self.metrics.inc("spool_refused", len(events))
            else:
                self.metrics.inc("stored", len(events))
            attempt = 0
            await asyncio.to_thread(self.spool.remove, batch_id)

    @property
    def spooling(self) -> bool:
        return self._spooling
