"""The bridge at run time: MQTT in, normalize, store (or spool), republish, then acknowledge.

The flow of one batch (three stages, each working on a different batch at the same time)::

    broker ──QoS 1──► Link ──► Pipeline.process ──► StoreWriter.write ──► publish events and
                                 (formats, checks,     (store, or disk         dead letters (QoS 1,
                                  dedup)                spool when down)        wait for PUBACK)
                                                                                     │
                                 acknowledge every message of the batch ◄────────────┘

A message is acknowledged only after its events are durable and republished and its
refusals dead-lettered, so a crash at any moment loses nothing: the broker delivers the
unacknowledged messages again (persistent session), and the store's writes are idempotent.
Batches form by themselves: whatever has arrived while the previous batch was parsed.
The MQTT connection is broker_bridge/link.py (gmqtt: why is said there).

No message can stop the bridge: a failure while handling one refuses that message (dead letter,
reason ``internal``); a stage that fails all the same restarts the consumer, and a message that
was in hand when the process died or the consumer failed is handled alone when it comes back,
and dead-lettered as ``poison`` if it stops the bridge again (vigil/core/poison.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from vigil.core import metrics
from vigil.core.backoff import BROKER_RECONNECT_CAP, Rotation, backoff_delay
from vigil.core.calibration import JOURNAL_NAME, CalibrationError
from vigil.core.event import Event
from vigil.core.health import HealthReporter, offline_payload
from vigil.core.poison import PoisonGuard, fingerprint
from vigil.core.settings import MqttSettings, StoreSettings
from vigil.core.stores import Store, open_store
from vigil.core.urls import mask_url

from .calibration import Calibrations
from .link import Delivery, Link, LinkError
from .metrics import Metrics
from .pipeline import DeadLetter, Outcome, Pipeline
from .settings import BridgeSettings
from .spool import Spool
from .writer import StoreWriter

__all__ = ["Bridge", "serve"]

log = logging.getLogger(__name__)

POISON_DETAIL = ("the bridge stopped twice while handling this message (poison): the process died or its consumer "
                 "failed, the second time with this message alone in hand; it is dead-lettered instead of handled "
                 "again so that the other messages go on")


@dataclass(slots=True)
class _Batch:
    """Messages taken together, and what became of them."""

    deliveries: list[Delivery]
    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    mark: int = 0  # the poison guard's record of the batch in hand
    suspect: Optional[bytes] = None  # the fingerprint of a suspect handled (or dead-lettered) alone


class Bridge:
    """One bridge process (several may share the load through ``bridge.shared_group``)."""

    def __init__(self, settings: BridgeSettings, mqtt: MqttSettings, store: Store, data_dir: str | Path) -> None:
        self.settings = settings
        self.mqtt = mqtt
        self.topics = mqtt.topics
        self.store = store
        self.metrics = Metrics()
        self.calibrations = Calibrations(settings.corrections(), Path(data_dir) / JOURNAL_NAME, self.topics,
                                         time.time(), settings.max_future)
        self.pipeline = Pipeline(settings, self.topics, self.calibrations.table)
        spool_path = Path(settings.spool_path or Path(data_dir) / "bridge-spool.db")
        self.spool = Spool(spool_path, settings.spool_max_events)
        self.guard = PoisonGuard(spool_path)
        self.writer = StoreWriter(store, self.spool, self.metrics)
        self.metrics.gauge("spool_events", "events waiting in the disk spool", lambda: self.spool.events)
        self._link: Optional[Link] = None
        self.metrics.gauge("inbox_messages", "messages received and not yet taken into a batch",
                           lambda: self._link.waiting if self._link else 0)
        self.connected = asyncio.Event()
        self.metrics.gauge("consuming", "1 while the bridge is subscribed and taking messages, else 0",
                           lambda: int(self.connected.is_set()))
        self.metrics.gauge("suspects", "messages in hand when the bridge last stopped, not yet back",
                           lambda: len(self.guard.suspects))
        self._in_flight: deque[_Batch] = deque()  # processed, not yet acknowledged, oldest first
        self._carried: list[_Batch] = []  # stored from a broker that was lost, to republish on the next one
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._alone: Optional[bytes] = None  # a suspect being handled with nothing else in hand
        self._refusal_said: set[tuple[str, str]] = set()
        self.health = HealthReporter(self.topics, "bridge", self.settings.client_id, self._health)

    async def run(self, ready: Optional[asyncio.Event] = None) -> None:
        """Run until cancelled; ``ready`` is set once subscribed."""
        try:
            # on the process's one registry: served here, and by the dashboard under `vigil up`
            with metrics.registered(self.metrics):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._supervised("bridge-spool-drain", self.writer.drain),
                                   name="bridge-spool-drain")
                    tg.create_task(self._supervised("bridge-summary", self._log_summary), name="bridge-summary")
                    tg.create_task(self._supervised("bridge-health", lambda: self.health.run(self._send_health)),
                                   name="bridge-health")
                    if hasattr(self.store, "prune"):
                        tg.create_task(self._supervised("bridge-prune", self._prune), name="bridge-prune")
                    if self.settings.metrics_listen:
                        host, _, port = self.settings.metrics_listen.rpartition(":")
                        tg.create_task(self._supervised("bridge-metrics",
                                                        lambda: metrics.serve(host.strip("[]"), int(port))),
                                       name="bridge-metrics")
                    tg.create_task(self._consume_forever(ready), name="bridge-consume")
        finally:
            self._give_back()
            self.guard.close()
            self.spool.close()

    async def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background task; when it fails, say so, count it and start it again with backoff."""
        attempt = 0
        while True:
            try:
                await run()
                return
            except Exception:
                attempt += 1
                self.metrics.inc("restarts")
                log.exception("bridge task %s failed; restarting it", name)
                await asyncio.sleep(backoff_delay(attempt))

    async def _carry_over(self, link: Link, limit: int) -> None:
        """Failing over to another broker: what the lost one delivered (in hand, or received and not yet taken) is
        stored now and republished on the next broker. The lost broker may never come back to deliver it again;
        if it does, the store keeps one copy of a reading per series and time."""
        while link.waiting:
            self._in_flight.append(self.process(await link.next_batch(limit)))
        for batch in self._in_flight:
            try:
                await self._make_durable(batch)
            except Exception:  # the writer spools what the store does not take; nothing more to do here
                log.exception("could not store what the lost broker had delivered")
                continue
            self._carried.append(batch)

    def _give_back(self) -> None:
        """The batches in flight go back to the broker unacknowledged (lost connection, clean stop)."""
        # Batches cut short were remembered by the deduplicator but never acknowledged: the
        # broker delivers them again, and they must then be stored and republished, not dropped.
        for batch in self._in_flight:
            self.pipeline.forget(batch.events)
        self._in_flight.clear()
        self.guard.release_all()
        if self._alone is not None:
            self.guard.back_to_suspect(self._alone)
            self._alone = None

    async def _consume_forever(self, ready: Optional[asyncio.Event]) -> None:
        attempt = 0
        state = "starting"
        brokers = self.mqtt.brokers()
        rotation = Rotation(len(brokers), BROKER_RECONNECT_CAP)  # several brokers: the next at once on a loss
        limit = self.settings.batch_size
        while True:
            broker = brokers[rotation.index]
            # The broker sends at most receive_maximum unacknowledged messages (MQTT 5); the link stops
            # reading the socket past inbox_bound, for brokers that send more.
            link = self._link = Link(self.mqtt, self.settings.client_id, receive_maximum=limit * 2,
                                     inbox_bound=limit * 4, will=self.health.will(), broker=broker)
            try:
                await link.connect()
                rotation.connected()
                try:
                    filters = [(f"$share/{self.settings.shared_group}/{f}" if self.settings.shared_group else f, qos)
                               for f, qos in self.pipeline.subscriptions()]
                    await link.subscribe(filters)
                    while self._carried:  # what the lost broker had delivered, for the engine (stored already)
                        await self._republish(link, self._carried[0])
                        self._carried.pop(0)
                    # Every bridge takes every calibration (never through the shared group). Refused by an
                    # ACL of before issue 16: said, and the bridge goes on with the calibrations it has.
                    refused = await link.subscribe([(self.calibrations.filter, 1)], refusable=True)
                    if refused and state != "connected":
                        log.warning("%s; calibrations from the dashboard do not reach this bridge (add `topic read "
                                    "%s` to its ACL: deploy/mosquitto/vigil.acl)", refused, self.calibrations.filter)
                    if state != "connected":
                        log.info("bridge connected to %s as %s; storing into %s", broker, self.settings.client_id,
                                 mask_url(self.store.name))
                    state, attempt = "connected", 0
                    self.connected.set()
                    self.health.changed()
                    if ready is not None:
                        ready.set()
                    try:
                        await self._consume(link)
                    except asyncio.CancelledError:
                        self._say_stopped(link)
                        raise
                finally:
                    await link.close()
            except LinkError as exc:
                self.connected.clear()
                if len(brokers) > 1:
                    await self._carry_over(link, limit)
                self._give_back()
                delay = rotation.failed()
                if state != "disconnected" or len(brokers) > 1:
                    log.warning("bridge lost the broker %s (%s); %s", broker, exc, f"trying {brokers[rotation.index]} "
                                "at once" if not delay else "reconnecting with backoff")
                    state = "disconnected"
                await asyncio.sleep(delay)
            except Exception:
                # A stage failed on something no one foresaw. The messages in hand become suspects, as
                # after a crash: they come back, each is handled alone, and one that fails again is poison.
                self.connected.clear()
                for batch in self._in_flight:
                    self.pipeline.forget(batch.events)
                self._in_flight.clear()
                self._alone = None
                self.guard.recover()
                self.metrics.inc("restarts")
                log.exception("the bridge's consumer failed; it reconnects and handles the messages it had in "
                              "hand one at a time")
                attempt += 1
                state = "failed"
                await asyncio.sleep(backoff_delay(attempt))

    async def _consume(self, link: Link) -> None:
        """Three stages, each batch through them in order: while one batch is being stored, the
        next is parsed and the one before is republished (each stage alone mostly waits: for the
        broker, for the store's answer, for messages)."""
        limit, linger = self.settings.batch_size, self.settings.batch_linger
        to_store: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=1)
        to_publish: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=1)

        async def store_stage() -> None:
            while True:
                batch = await to_store.get()
                await self._make_durable(batch)
                await to_publish.put(batch)

        async def publish_stage() -> None:
            while True:
                batch = await to_publish.get()
                await self._republish(link, batch)
                link.ack(batch.deliveries, later=not to_publish.empty())  # with the next batch's publishes
                self._in_flight.popleft()
                if batch.mark:
                    self.guard.release(batch.mark)
                if batch.suspect is not None:
                    self.guard.clear(batch.suspect)
                if not self._in_flight:
                    self._idle.set()

        self._idle.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(store_stage(), name="bridge-store")
                tg.create_task(publish_stage(), name="bridge-publish")
                while True:
                    await self._take(await link.next_batch(limit, linger), to_store)
        except BaseExceptionGroup as group:  # noqa: F821 (Python 3.11, as the server parts are)
            lost = [e for e in group.exceptions if isinstance(e, LinkError)]
            if lost and len(lost) == len(group.exceptions):
                raise lost[0] from None
            raise

    async def _take(self, deliveries: list[Delivery], to_store: asyncio.Queue[_Batch]) -> None:
        """Into the stages: suspects one at a time (poison dead-lettered unhandled), the rest as one batch."""
        guard = self.guard
        fps = [fingerprint(d.topic, d.payload) for d in deliveries]
        if guard.suspects:
            rest = []
            for delivery, fp in zip(deliveries, fps):
                verdict = guard.verdict(fp)
                if verdict is None:
                    rest.append((delivery, fp))
                    continue
                if verdict:
                    batch = _Batch([delivery], suspect=fp)
                    batch.dead = self.pipeline.refuse(delivery.topic, delivery.payload, time.time(), "poison",
                                                      POISON_DETAIL).dead
                    await self._send(batch, to_store)
                    continue
                await self._idle.wait()  # alone: nothing else in hand if the process dies now
                guard.hold_alone(fp)
                self._alone = fp
                batch = self.process([delivery])
                batch.suspect = fp
                await self._send(batch, to_store)
                await self._idle.wait()
                self._alone = None
            deliveries, fps = [d for d, _ in rest], [fp for _, fp in rest]
        if deliveries:
            mark = guard.hold(fps)
            batch = self.process(deliveries)
            batch.mark = mark
            await self._send(batch, to_store)

    async def _send(self, batch: _Batch, to_store: asyncio.Queue[_Batch]) -> None:
        self._in_flight.append(batch)
        self._idle.clear()
        await to_store.put(batch)

    def process(self, deliveries: list[Delivery]) -> _Batch:
        """Formats, checks and duplicates of each message: the batch's events and dead letters."""
        batch = _Batch(deliveries)
        events, dead = batch.events, batch.dead
        process = self.pipeline.process
        duplicates = 0
        calibrations = self.calibrations
        for message in deliveries:
            # Each message its own receive time: readings without a source time must not share one.
            try:
                if calibrations.takes(message.topic):  # in message order: the readings after it are corrected
                    outcome = self._calibrate(message)
                else:
                    outcome = process(message.topic, message.payload, time.time(), message.retain)
            except Exception as exc:  # one message's failure refuses that message, never the batch
                outcome = self._failed(message, exc)
            events.extend(outcome.events)
            dead.extend(outcome.dead)
            duplicates += outcome.duplicates
        if duplicates:
            self.metrics.inc("duplicates", duplicates)
        self.metrics.inc("received", len(deliveries))
        self.metrics.counts["corrected_ts"] = self.pipeline.corrected_ts
        if events:
            self.metrics.lag_seconds = time.time() - max(e.ts for e in events)
        return batch

    def _calibrate(self, message: Delivery) -> Outcome:
        """A calibration message: taken (journaled, then applied), or dead-lettered on ``deadletter/calibration``."""
        now = time.time()
        try:
            self.calibrations.handle(message.topic, message.payload, now)
        except CalibrationError as exc:
            if self.pipeline.first_time(message.topic, "calibration"):
                log.warning("calibration message on %s refused: %s (dead-lettered; said once per topic)",
                            message.topic, exc)
            out = Outcome()
            out.dead.append(DeadLetter("calibration", "calibration", str(exc), message.topic, message.payload, now,
                                       self.settings.deadletter_payload_bytes))
            return out
        return Outcome()

    def _failed(self, message: Delivery, exc: Exception) -> Outcome:
        kind = type(exc).__name__
        if self.pipeline.first_time(message.topic, kind):
            log.error("handling a message on %s failed (%s: %s); it is dead-lettered with reason internal and the "
                      "bridge goes on (said once per topic and kind)", message.topic, kind, exc, exc_info=exc)
        return self.pipeline.refuse(message.topic, message.payload, time.time(), "internal",
                                    f"{kind} while handling the message: {exc}")

    async def _make_durable(self, batch: _Batch) -> None:
        """Store (or spool) the batch's events; those the store refuses become dead letters."""
        refused = await self.writer.write(batch.events)
        if refused:
            bad = {id(e) for e, _ in refused}
            batch.events = [e for e in batch.events if id(e) not in bad]
            batch.dead.extend(DeadLetter.for_event(e, "store-rejected", why) for e, why in refused)

    async def _republish(self, link: Link, batch: _Batch) -> None:
        """Events and dead letters out at QoS 1, acknowledged by the broker."""
        for d in batch.dead:
            self.metrics.refuse(d.reason)
        outgoing = [(d.topic(self.topics), d.to_json()) for d in batch.dead]
        # Names were validated by the pipeline; building the topic again per event would check them twice.
        prefix = f"{self.topics.root}/events/"
        outgoing += [(f"{prefix}{e.device}/{e.metric}", e.to_json()) for e in batch.events]
        refused_out = await link.publish_all(outgoing)
        if refused_out:
            # Stored, but the broker will not take the events (or dead letters): retrying cannot help,
            # so say it once per topic and reason, count it, and acknowledge as usual.
            self.metrics.inc("republish_refused", len(refused_out))
            for topic, reason in refused_out:
                if (topic, reason) not in self._refusal_said and len(self._refusal_said) < 1000:
                    self._refusal_said.add((topic, reason))
                    log.error("the broker refused the bridge's publish on %s (%s): check the ACL of user %s; the "
                              "readings are stored but the rule engine does not see them", topic, reason,
                              self.mqtt.broker().username or "(anonymous)")
        self.metrics.inc("republished", len(batch.events) - sum(1 for t, _ in refused_out if t.startswith(prefix)))

    def _health(self) -> dict[str, Any]:
        """The bridge's health document (vigil/core/health.py): what the watchdog and ``vigil status`` read."""
        problems = [] if self.connected.is_set() else ["not connected to the broker: see the bridge's log"]
        if self.writer.spooling:
            problems.append("the store is unavailable: readings wait in the spool until it is back")
        return {"problems": problems, "store_ok": not self.writer.spooling, "spool_events": self.spool.events,
                "lag_seconds": round(self.metrics.lag_seconds, 3), "counters": dict(self.metrics.counts)}

    def _say_stopped(self, link: Link) -> None:
        """A clean stop sends no last will: say offline ourselves, before the DISCONNECT (the same write queue)."""
        if link.lost.is_set():  # already gone: the last will speaks
            return
        try:
            link.publish_now(self.health.topic, offline_payload("bridge", self.settings.client_id, "stopped"),
                             retain=True)
        except OSError:
            pass

    async def _send_health(self, topic: str, payload: bytes) -> bool:
        if self._link is None or not self.connected.is_set():
            return False
        self._link.publish_now(topic, payload, retain=True)
        return True

    async def _prune(self) -> None:
        """Keep the embedded store within its retention window, a little at a time."""
        while True:
            await asyncio.to_thread(self.store.prune)  # type: ignore[attr-defined]
            await asyncio.sleep(3600)

    async def _log_summary(self) -> None:
        while True:
            await asyncio.sleep(60)
            log.info("bridge: %s", self.metrics.summary())


async def serve(settings: BridgeSettings, mqtt: MqttSettings, store: Store | StoreSettings, data_dir: str | Path,
                *, ready: Optional[asyncio.Event] = None) -> None:
    """Run a bridge until cancelled (for ``vigil bridge`` and ``vigil up``): on ``store``, or on the store
    its settings name (opened here, and closed when the bridge stops)."""
    if not isinstance(store, StoreSettings):
        await Bridge(settings, mqtt, store, data_dir).run(ready)
        return
    opened = open_store(store.store_url(), retention=store.retention)
    try:
        await Bridge(settings, mqtt, opened, data_dir).run(ready)
    finally:
        opened.close()
