"""The rule engine's connection to the broker: connect, subscribe, take messages in batches, publish
alert states; reconnect with backoff.

A batch is acknowledged to the broker only after the engine committed what it caused (``_commit_then_ack``).
While connected, ``service.client`` is the connection; the metrics read it as "consuming".
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Optional

import aiomqtt

from alerting.guard import refusal
from vigil.core.backoff import BROKER_RECONNECT_CAP, Rotation
from vigil.core.health import offline_payload
from vigil.core.mqtt import Inbox, ack, build_client, enable_manual_ack

if TYPE_CHECKING:
    from alerting.service import AlertService

__all__ = ["keep_connected", "publish_states", "send_health"]

log = logging.getLogger(__name__)

#: messages taken from the inbox in one go, after the first one waited for
BATCH = 50


async def keep_connected(service: AlertService, ready: Optional[asyncio.Event]) -> None:
    """Connect, subscribe, handle messages; on a lost connection, connect again with backoff."""
    topics = service.topics
    will_topic, will_payload = service.health.will()
    brokers = service.mqtt.brokers()
    rotation = Rotation(len(brokers), BROKER_RECONNECT_CAP)  # several brokers: the next at once on a loss
    while True:
        inbox = Inbox()
        client = build_client(service.mqtt, service.settings.client_id, persistent=True, max_inflight=100,
                              inbox=inbox, will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=True),
                              broker=brokers[rotation.index])
        enable_manual_ack(client)
        service.catchup.watch_session(client)
        try:
            async with client:
                rotation.connected()
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
                    await _consume(service, client, inbox)
                except asyncio.CancelledError:
                    await _say_stopped(service, client)
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


def _commit_then_ack(service: AlertService, client: aiomqtt.Client, messages: list[aiomqtt.Message]) -> None:
    """Durable before acknowledged: what the batch changed (last heard too) is committed first."""
    service.engine.flush()
    for message in messages:
        ack(client, message)


async def _consume(service: AlertService, client: aiomqtt.Client, inbox: Inbox) -> None:
    def done(messages: list[aiomqtt.Message]) -> None:
        _commit_then_ack(service, client, messages)  # handled or refused: never delivered again

    def handle(topic: str, payload: bytes) -> None:
        if not service.catchup.take(topic, payload):  # our own catch-up marker is not an event
            service.handle(topic, payload)

    async for first in client.messages:
        # what is already waiting is handled in one go, then delivery and timers
        # get their turn (a queue that is never empty would never make us wait);
        # marked in hand meanwhile, so that a message that kills the engine is refused
        # when it comes back (alerting/inhand.py)
        service.in_hand.consume([first, *inbox.drain(BATCH)], handle, done)
        await asyncio.sleep(0)


async def _say_stopped(service: AlertService, client: aiomqtt.Client) -> None:
    """A clean stop sends no last will: say offline ourselves, briefly."""
    payload = offline_payload("alerting", service.settings.client_id, "stopped")
    try:
        await asyncio.wait_for(client.publish(service.health.topic, payload, qos=1, retain=True), 2)
    except (aiomqtt.MqttError, TimeoutError):
        pass


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
