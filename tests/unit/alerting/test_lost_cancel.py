"""Python 3.11's asyncio.wait_for (aiomqtt awaits every answer with it) drops a cancel that comes in the same turn
of the loop as the answer. A partition's engine whose state publisher swallowed one never stopped, and its
TaskGroup waited for ever: the partition stalled, its alerts untold (found by looping the database-away load test,
issue 18). The loops that await aiomqtt stop all the same (vigil/core/cancel.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from alerting.mqttloop import publish_states
from vigil.core.health import HealthReporter
from vigil.core.topics import Topics


class Answered:
    """A client whose publish awaits its answer as aiomqtt does (``asyncio.wait_for``), the answer held by the test."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting = asyncio.Event()
        self.published: list[str] = []

    async def publish(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.published.append(topic)
        self.waiting.set()
        await asyncio.wait_for(self.answer, 5)


async def answered_and_cancelled(task: asyncio.Task[None], client: Answered) -> None:
    """The answer and the cancel in one turn of the loop: wait_for returns the answer and drops the cancel."""
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
