"""One message's failure costs that message, never the bridge: in the pipeline, in a stage, again and again.

The failures are made by test implementations of the bridge's own parts (a pipeline that fails on
one topic as a bug would, a writer that fails on one value), on a real Mosquitto and SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.pipeline import Outcome, Pipeline
from broker_bridge.writer import StoreWriter
from tests.support.bridge import make_config, publish_many, reading, running_bridge, wait_for
from tests.support.services import Mosquitto
from vigil.core.event import Event, SeriesKey
from vigil.core.stores import open_store


class BuggyPipeline(Pipeline):
    """Fails on the topics of device ``buggy``, as a bug in deduplication or counting would."""

    def process(self, topic: str, payload: bytes, received: float, retained: bool = False) -> Outcome:
        if "/buggy/" in topic:
            raise KeyError("a bug")
        return super().process(topic, payload, received, retained)


class FailingWriter(StoreWriter):
    """Fails on any batch holding the value 13, ``times`` times (a stage failing on one message)."""

    times = 1

    async def write(self, events: Sequence[Event]) -> list[tuple[Event, str]]:
        if self.times and any(e.value == 13 for e in events):
            self.times -= 1
            raise RuntimeError("a stage failed")
        return await super().write(events)


def good(n: int, t0: float) -> list[tuple[str, bytes]]:
    return [(f"vigil/readings/dev-{i % 5}/t0", reading(float(i % 10), t0 + i, seq=i)) for i in range(n)]


def counts(store: Any, t0: float) -> list[int]:
    return [len(store.query(SeriesKey("temperature", f"dev-{d}", "t0"), t0 - 1, t0 + 10_000)) for d in range(5)]


async def test_a_failure_while_handling_one_message_dead_letters_it_and_logs_once(
        mosquitto: Mosquitto, tmp_path: Path, recorder_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(mosquitto, f"sqlite:///{tmp_path}/v.db", tmp_path)
    dead = recorder_factory("vigil/deadletter/#")
    t0 = time.time() - 600
    messages = good(50, t0)
    for i in (5, 17, 33):  # three failing messages among them
        messages.insert(i, ("vigil/readings/buggy/t0", reading(1.0, t0 + i)))
    with open_store(config.store.store_url()) as store:
        async with running_bridge(config, store) as bridge:
            bridge.pipeline = BuggyPipeline(bridge.settings, bridge.topics)
            with caplog.at_level(logging.ERROR, "broker_bridge"):
                await asyncio.to_thread(publish_many, mosquitto, messages)
                assert await wait_for(lambda: sum(counts(store, t0)) == 50 and len(dead.messages) == 3)
            assert [d["reason"] for _, d in dead.json()] == ["internal"] * 3
            assert "KeyError while handling the message" in dead.json()[0][1]["detail"]
            assert sum("handling a message on vigil/readings/buggy/t0 failed" in r.message
                       for r in caplog.records) == 1
            assert bridge.metrics.refused["internal"] == 3 and bridge.connected.is_set()


@pytest.mark.parametrize(("failures", "poison"), [(1, False), (1000, True)])
async def test_a_stage_that_fails_restarts_the_consumer_and_a_message_failing_alone_is_poison(
        mosquitto: Mosquitto, tmp_path: Path, recorder_factory: Any, failures: int, poison: bool) -> None:
    config = make_config(mosquitto, f"sqlite:///{tmp_path}/v.db", tmp_path)
    dead = recorder_factory("vigil/deadletter/#")
    t0 = time.time() - 600
    messages = good(40, t0)
    messages.insert(20, ("vigil/readings/thirteen/t0", reading(13.0, t0 + 0.5)))
    with open_store(config.store.store_url()) as store:
        async with running_bridge(config, store) as bridge:
            writer = bridge.writer = FailingWriter(store, bridge.spool, bridge.metrics)
            writer.times = failures
            await asyncio.to_thread(publish_many, mosquitto, messages)
            assert await wait_for(lambda: sum(counts(store, t0)) == 40, 30), counts(store, t0)
            thirteen = SeriesKey("temperature", "thirteen", "t0")
            if poison:
                assert await wait_for(lambda: len(dead.messages) == 1, 30)
                [(_, letter)] = dead.json()
                assert (letter["reason"], letter["topic"]) == ("poison", "vigil/readings/thirteen/t0")
                assert store.query(thirteen, t0 - 1, t0 + 10) == []
                assert bridge.metrics.counts["restarts"] == 2
            else:  # failed once: handled alone again, stored
                assert await wait_for(lambda: len(store.query(thirteen, t0 - 1, t0 + 10)) == 1, 30)
                assert dead.messages == [] and bridge.metrics.counts["restarts"] == 1
            assert counts(store, t0) == [8] * 5
            assert await wait_for(lambda: not bridge.guard.suspects and bridge.connected.is_set(), 10)
