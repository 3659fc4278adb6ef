"""The store writer and its disk spool: durable on return, in order after an outage, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from broker_bridge.metrics import Metrics
from broker_bridge.spool import Spool
from broker_bridge.writer import StoreWriter
from vigil.core.event import Event, SeriesKey
from vigil.core.stores import MemoryStore, Point, StoreRejected

S = SeriesKey("temperature", "freezer", "t0")


def ev(i: int) -> Event:
    return Event(device="freezer", sensor="t0", metric="temperature", value=float(i), ts=1_700_000_000.0 + i,
                 unit="°C", seq=i)


def test_spool_is_fifo_durable_and_bounded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_events=10)
    assert spool.put([ev(0), ev(1), ev(2), ev(3)]) == 0
    assert spool.put([ev(4), ev(5), ev(6), ev(7)]) == 0
    assert spool.put([ev(8), ev(9), ev(10)]) == 4  # the oldest batch goes
    assert (spool.events, len(spool), spool.dropped) == (7, 2, 4)
    spool.close()
    again = Spool(tmp_path / "s.db", max_events=10)  # survives a restart
    item = again.peek()
    assert item is not None
    assert [e.seq for e in item[1]] == [4, 5, 6, 7]
    again.remove(item[0])
    item = again.peek()
    assert item is not None and [e.value for e in item[1]] == [8.0, 9.0, 10.0]
    again.remove(item[0])
    assert again.peek() is None and again.events == 0
    again.close()


async def test_store_outage_spools_then_drains_in_order(tmp_path: Path) -> None:
    store = MemoryStore()
    metrics = Metrics()
    spool = Spool(tmp_path / "s.db")
    writer = StoreWriter(store, spool, metrics, backoff_cap=0.01)
    drain = asyncio.create_task(writer.drain())
    try:
        await writer.write([ev(0), ev(1)])
        store.available = False
        await writer.write([ev(2), ev(3)])
        assert writer.spooling and spool.events == 2
        store.available = True
        # while the spool still holds events, new ones queue behind them (order per series)
        await writer.write([ev(4)])
        for _ in range(1000):  # up to 10 s: a busy machine runs the drain late
            if not writer.spooling:
                break
            await asyncio.sleep(0.01)
        assert not writer.spooling and spool.events == 0
        assert [p.value for p in store.query(S, 0, 2e9)] == [0, 1, 2, 3, 4]
        assert metrics.counts["spooled"] == 3 and metrics.counts["stored"] == 5
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        spool.close()


class PickyStore(MemoryStore):
    """Refuses events with negative values, as a store refuses a field type conflict."""

    def write(self, events: Sequence[Event]) -> None:
        if any(e.value < 0 for e in events):
            raise StoreRejected(self.name, "field type conflict")
        super().write(events)


async def test_a_store_down_for_thousands_of_retries_keeps_the_drain_alive(tmp_path: Path) -> None:
    # Retry n waits up to min(cap, 1.5**n): the exponent must be bounded, or after ~1,750 retries
    # (some 7 hours of outage at the default cap) 1.5**n overflows and the drain task dies.
    tries = [0]

    class DownStore(MemoryStore):
        def write(self, events: Sequence[Event]) -> None:
            tries[0] += 1
            super().write(events)

    store = DownStore()
    store.available = False
    spool = Spool(tmp_path / "s.db")
    writer = StoreWriter(store, spool, Metrics(), backoff_cap=0.0)
    await writer.write([ev(0)])
    drain = asyncio.create_task(writer.drain())
    try:
        for _ in range(3000):
            if tries[0] > 2000 or drain.done():
                break
            await asyncio.sleep(0.01)
        assert not drain.done(), drain.exception()
        assert tries[0] > 2000
        store.available = True
        for _ in range(300):
            if not writer.spooling:
                break
            await asyncio.sleep(0.01)
        assert [p.value for p in store.query(S, 0, 2e9)] == [0.0]
    finally:
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        spool.close()


async def test_refused_events_are_isolated_and_the_rest_stored(tmp_path: Path) -> None:
    store = PickyStore()
    spool = Spool(tmp_path / "s.db")
    writer = StoreWriter(store, spool, Metrics())
    refused = await writer.write([ev(1), ev(-2), ev(3)])
    assert [(e.value, why) for e, why in refused] == [(-2.0, "memory://: field type conflict")]
    assert store.query(S, 0, 2e9) == [Point(1_700_000_001.0, 1.0), Point(1_700_000_003.0, 3.0)]
    spool.close()


class BuggyStore(MemoryStore):
    """Fails on one value with an exception no store interface names (as a store's bug would)."""

    def write(self, events: Sequence[Event]) -> None:
        if any(e.value == 13 for e in events):
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
        super().write(events)


async def test_an_unforeseen_store_failure_costs_one_event_not_the_batch_or_the_bridge(tmp_path: Path) -> None:
    store, spool, metrics = BuggyStore(), Spool(tmp_path / "s.db"), Metrics()
    writer = StoreWriter(store, spool, metrics)
    refused = await writer.write([ev(12), ev(13), ev(14)])
    assert [(e.value, why.split(":")[0]) for e, why in refused] == [(13.0, "UnicodeEncodeError in store memory")]
    assert [p.value for p in store.query(S, 0, 2e9)] == [12.0, 14.0]
    assert metrics.counts["stored"] == 2
    spool.close()


async def test_an_event_no_store_can_hold_is_refused_alone_even_while_spooling(tmp_path: Path) -> None:
    store, spool, metrics = MemoryStore(), Spool(tmp_path / "s.db"), Metrics()
    writer = StoreWriter(store, spool, metrics)
    inf = Event(device="freezer", sensor="t0", metric="temperature", value=float("inf"), ts=1_700_000_000.5)
    refused = await writer.write([ev(1), inf, ev(2)])
    assert [(e, "finite" in why) for e, why in refused] == [(inf, True)]
    assert [p.value for p in store.query(S, 0, 2e9)] == [1.0, 2.0] and metrics.counts["stored"] == 2
    store.available = False
    refused = await writer.write([ev(3), inf, ev(4)])  # spooled: the bad one is refused now, not dropped later
    assert [e for e, _ in refused] == [inf] and spool.events == 2
    spool.close()


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.inc("received", 3)
    m.refuse('bad "json"\n')
    m.gauge("spool_events", "events waiting", lambda: 7)
    text = generate_latest(m).decode()  # as /metrics writes them
    assert "vigil_bridge_received_total 3" in text
    assert 'vigil_bridge_refused_total{reason="bad \\"json\\"\\n"} 1' in text
    assert "vigil_bridge_spool_events 7" in text
    assert "received 3" in m.summary()


@pytest.mark.parametrize("bound", [1, 3])
def test_spool_keeps_at_least_the_newest_batch(tmp_path: Path, bound: int) -> None:
    spool = Spool(tmp_path / "s.db", max_events=bound)
    spool.put([ev(i) for i in range(5)])
    assert spool.events == 5  # a single batch larger than the bound is kept whole
    spool.put([ev(9)])
    assert spool.events == 1 and spool.dropped == 5
    spool.close()


def test_dedup_forgets_an_unacknowledged_batch() -> None:
    from broker_bridge.dedup import Deduplicator

    d = Deduplicator()
    assert d.seen(ev(1)) is False
    assert d.seen(ev(1)) is True  # a redelivery of an acknowledged message
    d.forget(ev(1))  # its batch failed before the acknowledgement: the redelivery must go through
    assert d.seen(ev(1)) is False
    assert d.seen(ev(1)) is True
