"""Python 3.11's asyncio.wait_for, with which aiomqtt awaits every answer, drops a cancel that comes in the same turn
of the loop as the answer. A partition's engine whose state publisher swallowed one never stopped, and its TaskGroup
waited for ever: the partition stalled, its alerts untold (found by looping the database-away load test, issue 18).
Vigil's aiomqtt client (vigil/core/mqtt.py ``Client``) awaits its answers with asyncio.timeout: the loops that
publish stop when asked."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import aiomqtt

from alerting.mqttloop import publish_states
from vigil.core.health import HealthReporter
from vigil.core.mqtt import build_client
from vigil.core.settings import MqttSettings
from vigil.core.topics import Topics


def test_every_answer_aiomqtt_awaits_goes_through_the_wait_vigil_replaces() -> None:
    """The reach under the installed aiomqtt: connect, publish and subscribe await ``Client._wait_for``."""
    assert "_wait_for" in vars(aiomqtt.Client)
    for method in (aiomqtt.Client.__aenter__, aiomqtt.Client.publish, aiomqtt.Client.subscribe):
        source = inspect.getsource(method)
        assert "self._wait_for(" in source and "asyncio.wait_for(" not in source, method


class Answered:
    """Publishes as aiomqtt does, through Vigil's client's ``_wait_for``; the answer is held by the test."""

    def __init__(self) -> None:
        self.client = build_client(MqttSettings(), "t-cancel")
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting = asyncio.Event()
        self.published: list[str] = []

    async def publish(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.published.append(topic)
        self.waiting.set()
        await self.client._wait_for(self.answer, 5)


async def answered_and_cancelled(task: asyncio.Task[None], client: Answered) -> None:
    """The answer and the cancel in one turn of the loop (what asyncio.wait_for drops)."""
    await asyncio.wait_for(client.waiting.wait(), 5)
    client.answer.set_result(None)
    task.cancel()


async def test_the_state_publisher_stops_when_its_cancel_comes_with_a_puback() -> None:
    client = Answered()
    service = SimpleNamespace(outgoing=asyncio.Queue(), client=client)
    for topic in ("vigil/alerts/a", "vigil/alerts/b"):
        service.outgoing.put_nowait((topic, b"{}"))
    task = asyncio.create_task(publish_states(service))  # type: ignore[arg-type]
    await answered_and_cancelled(task, client)
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done and task.cancelled(), "the publisher went on after it was cancelled"
    assert client.published == ["vigil/alerts/a"]


async def test_the_health_reporter_stops_when_its_cancel_comes_with_a_puback() -> None:
    client = Answered()

    async def send(topic: str, payload: bytes) -> bool:
        await client.publish(topic)
        return True

    reporter = HealthReporter(Topics(), "alerting", "e1", lambda: {}, poll=0.01)
    task = asyncio.create_task(reporter.run(send))
    await answered_and_cancelled(task, client)
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done and task.cancelled(), "the health reporter went on after it was cancelled"


async def test_an_answer_that_does_not_come_is_an_mqtt_error_as_before() -> None:
    client = build_client(MqttSettings(), "t-timeout")
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        await client._wait_for(never, 0.05)
    except aiomqtt.MqttError as exc:
        assert str(exc) == "Operation timed out"
    else:
        raise AssertionError("no error")
