"""Getting events durable: into the store, or into the disk spool while the store is down.

``write`` returns only once every event is stored, spooled or refused (so the caller may
acknowledge the MQTT messages). One event never costs the others: a store refuses an event it
cannot hold alone (EventsRefused), and when a store refuses a whole batch, or fails on it in a
way no one foresaw, the batch is written again one event at a time to find the ones it refuses.
While anything waits in the spool, new batches go behind it, so each series is written in order.
``drain`` (a background task) empties the spool when the store is back, retrying with capped,
jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence

from vigil.core.backoff import backoff_delay
from vigil.core.event import Event
from vigil.core.stores import EventsRefused, Store, StoreRejected, StoreUnavailable, unstorable

from .metrics import Metrics
from .spool import Spool

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
            return await self._to_spool(events)
        started = time.perf_counter()
        try:
            await self.store.write_async(events)
        except StoreUnavailable as exc:
            log.warning("store unavailable, spooling readings to %s until it is back: %s", self.spool.path, exc)
            self._spooling = True
            return await self._to_spool(events)
        except EventsRefused as exc:
            self.metrics.observe_store(time.perf_counter() - started, len(events) - len(exc.refused))
            return exc.refused
        except StoreRejected:
            return await self._isolate(events)
        except Exception:  # a store's own bug on some content: find the event, keep the others
            log.exception("store %s failed on a batch of %d events; writing them one by one", self.store.name,
                          len(events))
            return await self._isolate(events)
        self.metrics.observe_store(time.perf_counter() - started, len(events))
        return []

    async def _to_spool(self, events: Sequence[Event]) -> list[tuple[Event, str]]:
        """Spool what a store could hold; the others are refused now (from the spool they could not be)."""
        refused = [(e, why) for e in events if (why := unstorable(e)) is not None]
        if refused:
            bad = {id(e) for e, _ in refused}
            events = [e for e in events if id(e) not in bad]
        attempt = 0
        while events:
            try:
                dropped = await asyncio.to_thread(self.spool.put, events)
                break
            except (OSError, sqlite3.Error) as exc:  # the disk is full or gone: wait, the messages stay unacknowledged
                attempt += 1
                if attempt == 1:
                    log.error("cannot write to the spool %s (%s) while the store is down; the readings wait at the "
                              "broker, retrying", self.spool.path, exc)
                await asyncio.sleep(backoff_delay(attempt, self.backoff_cap))
        if events:
            self.metrics.inc("spooled", len(events))
            if dropped:
                self.metrics.inc("spool_dropped", dropped)
            self._wake.set()
        return refused

    async def _isolate(self, events: Sequence[Event]) -> list[tuple[Event, str]]:
        """The store refused the batch: write one by one to find the events it refuses."""
        refused: list[tuple[Event, str]] = []
        spooled = 0
        for e in events:
            try:
                await self.store.write_async([e])
            except StoreUnavailable:
                self._spooling = True
                refused += await self._to_spool([e])
                spooled += 1
            except EventsRefused as exc:
                refused += exc.refused
            except StoreRejected as exc:
                refused.append((e, str(exc)))
            except Exception as exc:
                refused.append((e, f"{type(exc).__name__} in store {self.store.name}: {exc}"[:300]))
        self.metrics.inc("stored", len(events) - len(refused) - spooled)
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
                await self.store.write_async(events)
            except StoreUnavailable as exc:
                attempt += 1
                delay = backoff_delay(attempt, self.backoff_cap)
                log.debug("store still unavailable (%s); %d events wait; next try in %.1fs", exc,
                          self.spool.events, delay)
                await asyncio.sleep(delay)
                continue
            except EventsRefused as exc:
                self._spool_refused(exc.refused, len(events))
            except Exception:  # StoreRejected, or a store's bug: keep what it takes
                self._spool_refused(await self._isolate(events), len(events))
            else:
                self.metrics.inc("stored", len(events))
            attempt = 0
            await asyncio.to_thread(self.spool.remove, batch_id)

    def _spool_refused(self, refused: list[tuple[Event, str]], of: int) -> None:
        if refused:
            log.error("store refused %d of %d spooled events (%s); dead-lettering is not possible from the spool "
                      "(their messages were acknowledged), dropping them", len(refused), of, refused[0][1])
            self.metrics.inc("spool_refused", len(refused))

    @property
    def spooling(self) -> bool:
        return self._spooling
