"""The bridge at run time: MQTT in, normalize, store (or spool), republish, then acknowledge.

The flow of one batch::

    broker ──QoS 1──► inbox ──► Pipeline.process ──► StoreWriter.write ──► publish events and
                                 (formats, checks,     (store, or disk         dead letters (QoS 1,
                                  dedup)                spool when down)        wait for PUBACK)
                                                                                     │
                                 acknowledge every message of the batch ◄────────────┘

A message is acknowledged only after its events are durable and republished and its
refusals dead-lettered, so a crash at any moment loses nothing: the broker delivers the
unacknowledged messages again (persistent session), and the store's writes are idempotent.
Batches form by themselves: whatever has arrived while the previous batch was written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Optional

import aiomqtt

from vigil.config import VigilConfig
from vigil.event import Event
from vigil.mqtt import Inbox, ack, backoff_delay, build_client, enable_manual_ack, publish_all
from vigil.urls import mask_url

from .metrics import Metrics, serve_metrics
from .pipeline import DeadLetter, Pipeline
from .spool import Spool
from .stores import Store, open_store
from .writer import StoreWriter

__all__ = ["Bridge", "serve"]

log = logging.getLogger(__name__)


class Bridge:
    """One bridge process (several may share the load through ``bridge.shared_group``)."""

    def __init__(self, config: VigilConfig, store: Store, *, spool_path: Optional[Path] = None,
                 spool_max_events: Optional[int] = None) -> None:
        self.config = config
        self.settings = config.bridge
        self.topics = config.mqtt.topics
        self.store = store
        self.metrics = Metrics()
        self.pipeline = Pipeline(self.settings, self.topics)
        spool_path = spool_path or Path(self.settings.spool_path or Path(config.data_dir) / "bridge-spool.db")
        self.spool = Spool(spool_path, spool_max_events or self.settings.spool_max_events)
        self.writer = StoreWriter(store, self.spool, self.metrics)
        self.metrics.gauge("spool_events", "events waiting in the disk spool", lambda: self.spool.events)
        self._inbox: Optional[Inbox] = None
        self.metrics.gauge("inbox_messages", "messages received and not yet taken into a batch",
                           lambda: self._inbox.queue.qsize() if self._inbox and self._inbox.queue else 0)
        self.connected = asyncio.Event()
        self._unacked: list[Event] = []
        self._refusal_said: set[tuple[str, str]] = set()

    async def run(self, ready: Optional[asyncio.Event] = None) -> None:
        """Run until cancelled; ``ready`` is set once subscribed."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.writer.drain(), name="bridge-spool-drain")
                tg.create_task(self._log_summary(), name="bridge-summary")
                if hasattr(self.store, "prune"):
                    tg.create_task(self._prune(), name="bridge-prune")
                if self.settings.metrics_listen:
                    host, _, port = self.settings.metrics_listen.rpartition(":")
                    tg.create_task(serve_metrics(self.metrics, host, int(port)), name="bridge-metrics")
                tg.create_task(self._consume_forever(ready), name="bridge-consume")
        finally:
            self.spool.close()

    async def _consume_forever(self, ready: Optional[asyncio.Event]) -> None:
        attempt = 0
        state = "starting"
        broker = self.config.mqtt.broker()
        while True:
            inbox = self._inbox = Inbox()
            client = build_client(self.config.mqtt, self.settings.client_id, persistent=True, inbox=inbox,
                                  receive_maximum=self.settings.batch_size * 2)
            enable_manual_ack(client)
            try:
                async with client:
                    for topic_filter, qos in self.pipeline.subscriptions():
                        if self.settings.shared_group:
                            topic_filter = f"$share/{self.settings.shared_group}/{topic_filter}"
                        await client.subscribe(topic_filter, qos=qos)
                    if state != "connected":
                        log.info("bridge connected to %s as %s; storing into %s", broker, self.settings.client_id,
                                 mask_url(self.store.name))
                    state, attempt = "connected", 0
                    self.connected.set()
                    if ready is not None:
                        ready.set()
                    await self._consume(client, inbox)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                # A batch cut short was remembered by the deduplicator but never acknowledged: the
                # broker delivers it again, and it must then be stored and republished, not dropped.
                self.pipeline.forget(self._unacked)
                self._unacked = []
                attempt += 1
                delay = backoff_delay(attempt)
                if state != "disconnected":
                    log.warning("bridge lost the broker %s (%s); reconnecting with backoff", broker, exc)
                    state = "disconnected"
                await asyncio.sleep(delay)

    async def _consume(self, client: aiomqtt.Client, inbox: Inbox) -> None:
        limit = self.settings.batch_size
        async for first in client.messages:
            batch = [first, *inbox.drain(limit - 1)]
            await self.handle(client, batch)

    async def handle(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        """Process, make durable, republish, then acknowledge one batch."""
        events: list[Event] = []
        dead: list[DeadLetter] = []
        for message in batch:
            payload = message.payload
            if not isinstance(payload, bytes):
                payload = bytes(payload) if isinstance(payload, bytearray) else str(payload or "").encode()
            # Each message its own receive time: readings without a source time must not share one.
            now = time.time()
            outcome = self.pipeline.process(message.topic.value, payload, now, bool(message.retain))
            events.extend(outcome.events)
            dead.extend(outcome.dead)
            if outcome.duplicates:
                self.metrics.inc("duplicates", outcome.duplicates)
        self.metrics.inc("received", len(batch))
        self.metrics.counts["corrected_ts"] = self.pipeline.corrected_ts
        if events:
            self.metrics.lag_seconds = time.time() - max(e.ts for e in events)
        self._unacked = events
        refused = await self.writer.write(events)
        if refused:
            bad = {id(e) for e, _ in refused}
            events = [e for e in events if id(e) not in bad]
            dead.extend(DeadLetter.for_event(e, "store-rejected", why) for e, why in refused)
        for d in dead:
            self.metrics.refuse(d.reason)
        outgoing = [(d.topic(self.topics), d.to_json()) for d in dead]
        # Names were validated by the pipeline; building the topic again per event would check them twice.
        prefix = f"{self.topics.root}/events/"
        outgoing += [(f"{prefix}{e.device}/{e.metric}", e.to_json()) for e in events]
        refused_out = await publish_all(client, outgoing)
        if refused_out:
            # Stored, but the broker will not take the events (or dead letters): retrying cannot help,
            # so say it once per topic and reason, count it, and acknowledge as usual.
            self.metrics.inc("republish_refused", len(refused_out))
            for topic, reason in refused_out:
                if (topic, reason) not in self._refusal_said and len(self._refusal_said) < 1000:
                    self._refusal_said.add((topic, reason))
                    log.error("the broker refused the bridge's publish on %s (%s): check the ACL of user %s; the "
                              "readings are stored but the rule engine does not see them", topic, reason,
                              self.config.mqtt.broker().username or "(anonymous)")
        self.metrics.inc("republished", len(events) - sum(1 for t, _ in refused_out if t.startswith(prefix)))
        for message in batch:
            ack(client, message)
        self._unacked = []

    async def _prune(self) -> None:
        """Keep the embedded store within its retention window, a little at a time."""
        while True:
            await asyncio.to_thread(self.store.prune)  # type: ignore[attr-defined]
            await asyncio.sleep(3600)

    async def _log_summary(self) -> None:
        while True:
            await asyncio.sleep(60)
            log.info("bridge: %s", self.metrics.summary())


async def serve(config: VigilConfig, *, store: Optional[Store] = None, ready: Optional[asyncio.Event] = None) -> None:
    """Run a bridge until cancelled (for ``vigil bridge`` and ``vigil up``)."""
    own_store = store is None
    if store is None:
        store = open_store(config.store.store_url(), retention=config.store.retention)
    try:
        await Bridge(config, store).run(ready)
    finally:
        if own_store:
            store.close()
