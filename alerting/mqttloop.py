"""The rule engine's connection to the broker: connect, subscribe, take messages in batches, publish
alert states; reconnect with backoff.

Messages are read and decoded by alerting/mqttread.py and taken in batches of up to :data:`BATCH`. A batch
is acknowledged to the broker (one write) only after the engine committed what it caused
(``_commit_then_ack``); small batches share one commit and one write, within :data:`ACK_DELAY`. In a steady
stream a batch may wait up to ``alerting.batch_linger`` for more (adaptive linger, see ``_consume``); a reading
after a quiet spell never waits. While connected, ``service.client`` is the connection; the metrics read it as
"consuming".
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Callable, Optional

import aiomqtt

from alerting.guard import refusal
from alerting.mqttread import Incoming, Reader
from vigil.core.backoff import BROKER_RECONNECT_CAP, Rotation
from vigil.core.mqtt import build_client, enable_manual_ack, say_stopped

if TYPE_CHECKING:
    from alerting.service import AlertService

__all__ = ["keep_connected", "publish_states", "send_health"]

log = logging.getLogger(__name__)

#: messages handled, committed and acknowledged in one go, at most
BATCH = 250
#: The longest a batch waits to fill is the setting ``alerting.batch_linger`` (10 ms), and only in a stream: the batch
#: before it was taken less than twice that earlier (so at a steady 1,000 readings/s, several readings share a
#: wake-up, a commit and a write). A reading after a quiet spell (a freezer's, every few seconds) is judged at once.
#: At 1,000 readings/s (bench/rules/engine_drain.py): 10 ms 76-80 µs of CPU an event against 94-100 with 4 ms, +3.5
#: ms at p50 (docs/proof.md, Issue 18, The lingers).
#: a handled batch's commit ("last heard") and acknowledgement wait up to ACK_DELAY for those of the next
#: batches (one commit and one write for several small ones), unless ACK_NOW messages wait for theirs (under
#: Mosquitto's default max_inflight_messages of 20). A transition is committed at once in any case (with its
#: notification in the outbox): this delays no alert.
ACK_DELAY = 0.005
ACK_NOW = 10


async def keep_connected(service: AlertService, ready: Optional[asyncio.Event]) -> None:
    """Connect, subscribe, handle messages; on a lost connection, connect again with backoff."""
    topics = service.topics
    will_topic, will_payload = service.health.will()
    brokers = service.mqtt.brokers()
    rotation = Rotation(len(brokers), BROKER_RECONNECT_CAP)  # several brokers: the next at once on a loss
    while True:
        client = build_client(service.mqtt, service.settings.client_id, persistent=True, max_inflight=100,
                              will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=True),
                              broker=brokers[rotation.index])
        enable_manual_ack(client)
        reader = Reader(client, service.mqtt.protocol == "5", service.guard.refuse)
        service.catchup.watch_session(client)
        try:
            async with client:
                rotation.connected()
                reader.watch()
                for flt in (topics.all_events, topics.all_status, topics.all_acks, topics.all_notes,
                            topics.all_silences, topics.all_health, topics.rules_reload):
                    # health is a state: its retained copy comes on every subscribe, so none need queue
                    qos = 0 if flt == topics.all_health else 1
                    service.guard.subscription(flt, refusal(await client.subscribe(flt, qos=qos)))
                await service.catchup.begin(client)
                service.republish_all()
                log.info("connected to the broker %s; watching %s", brokers[rotation.index], topics.all_events)
                if service.watchdog is not None:
                    service.watchdog.broker(True)
                service.health.changed()
                if ready is not None:
                    ready.set()
                service.client = client
                try:
                    await _consume(service, reader)
                except asyncio.CancelledError:
                    await say_stopped(client, service.health.topic, "alerting", service.settings.client_id)
                    raise
                finally:
                    service.client = None
                    service.catchup.lost()
        except aiomqtt.MqttError as exc:
            if service.watchdog is not None:
                service.watchdog.broker(False)
            lost = brokers[rotation.index]
            delay = rotation.failed()
            log.warning("no connection to the broker %s (%s); trying %s in %.1fs", lost, exc, brokers[rotation.index],
                        delay)
            await asyncio.sleep(delay)


def _commit_then_ack(service: AlertService, reader: Reader, messages: list[Incoming]) -> None:
    """Durable before acknowledged: what the batches changed (last heard too) is committed first."""
    service.engine.flush()
    reader.ack(messages)


async def _consume(service: AlertService, reader: Reader) -> None:
    handled: list[Incoming] = []  # handled or refused, not yet committed and acknowledged
    due = 0.0
    loop = asyncio.get_running_loop()

    def done(messages: list[Incoming]) -> None:
        nonlocal due
        if not handled:
            due = loop.time() + ACK_DELAY
        handled.extend(messages)
        if len(handled) >= ACK_NOW:
            commit_then_ack()

    def commit_then_ack() -> None:
        batch = handled[:]
        handled.clear()
        _commit_then_ack(service, reader, batch)  # never delivered again

    def handle(topic: str, payload: bytes) -> None:
        if topic and not service.catchup.take(topic, payload):  # our own catch-up marker is not an event
            service.handle(topic, payload)

    linger = service.settings.batch_linger
    taken = -math.inf  # when the last batch was taken
    try:
        while True:
            if handled:
                await reader.wait(1, max(0.0, due - loop.time()))
                if not reader.ready:
                    commit_then_ack()
                    continue
            else:
                await reader.wait()
            if linger and len(reader.ready) < BATCH and loop.time() - taken < 2 * linger:
                # in a stream, a short wait fills the batch: one wake-up, commit and write for many
                await reader.wait(BATCH, linger)
            batch = reader.take(BATCH)
            taken = loop.time()
            if any(m.dup for m in batch):
                batch = _not_judged_again(service, batch, done)
            # marked in hand meanwhile, so that a message that kills the engine is refused when it
            # comes back (alerting/inhand.py)
            service.in_hand.consume(batch, handle, done)
            if reader.ready:
                await asyncio.sleep(0)  # delivery, timers and the socket get their turn (else wait() yields)
    except asyncio.CancelledError:
        if handled:
            commit_then_ack()
        raise


def _not_judged_again(service: AlertService, batch: list[Incoming], done: Callable[[list[Incoming]], None]
                      ) -> list[Incoming]:
    """The batch without the readings the broker delivers again that the engine judged already (handled and
    committed, their acknowledgement lost with a connection): those are acknowledged, not judged a second time,
    which after newer readings would tell a late excursion that was told already."""
    again = {id(m) for m in batch if m.dup and not m.problem and service.judged_before(m.topic, m.payload)}
    if not again:
        return batch
    done([m for m in batch if id(m) in again])
    log.info("%d reading(s) delivered again by the broker and judged already: acknowledged, not judged again",
             len(again))
    return [m for m in batch if id(m) not in again]


async def send_health(service: AlertService, topic: str, payload: bytes) -> bool:
    """The health reporter's sender: retained, on the engine's own connection."""
    client = service.client
    if client is None:
        return False
    await client.publish(topic, payload, qos=1, retain=True, timeout=5)
    return True


async def publish_states(service: AlertService) -> None:
    """Publish alert states (retained), in order; while the broker is away they wait."""
    while True:
        topic, payload = await service.outgoing.get()
        while True:
            client = service.client
            if client is None:
                await asyncio.sleep(0.2)
                continue
            try:
                await client.publish(topic, payload, qos=1, retain=True)
                break
            except aiomqtt.MqttError as exc:
                log.warning("could not publish the state on %s (%s); trying again", topic, exc)
                await asyncio.sleep(0.5)
