"""The dispatcher fenced by partition 0's lease on a real private PostgreSQL (alerting/failover.py's delivery fence):
while member A holds the lease its dispatcher delivers; once the lease ran out and member B took it, A's dispatcher
takes no outbox entry and starts no send, and its run() ends with PartitionLost (and ends again at once if started
again), while a dispatcher fenced by B's lease delivers what A left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from alerting import lease
from alerting.engine import PartitionLost
from alerting.notify import Dispatcher, RecordingSender
from alerting.notify.outbox import OUTBOX_TABLE
from alerting.transition import Transition
from tests.support.dispatcher import PG_ENGINE_TABLES, START, config, pg_enqueue, transition
from vigil.core import sqldb
from vigil.core.clock import ManualClock, SystemClock

pytestmark = pytest.mark.integration

TTL = 3.0
NOW_CFG = config(grouping={"group_wait": "0s", "group_interval": "0s", "repeat_interval": "4h"})


def fence_of(leases: lease.Leases) -> Callable[[sqldb.Connection], None]:
    """failover.py's delivery fence: partition 0 at the epoch ``leases`` holds now; LeaseLost -> PartitionLost."""
    def fence(c: sqldb.Connection) -> None:
        try:
            if 0 not in leases.held:
                raise lease.LeaseLost({0})
            lease.fence(c, leases.member_id, {0: leases.held[0]})  # type: ignore[arg-type]
        except lease.LeaseLost as exc:
            raise PartitionLost(str(exc)) from exc
    return fence


@pytest.fixture
def members(pg_url: str) -> Iterator[tuple[lease.Leases, lease.Leases]]:
    engine = sqldb.connect(pg_url)
    engine.executescript(PG_ENGINE_TABLES)
    engine.close()
    a = lease.Leases(pg_url, "a", partitions=1, ttl=TTL, interval=1)
    b = lease.Leases(pg_url, "b", partitions=1, ttl=TTL, interval=1)
    yield a, b
    a.close()
    b.close()


def enqueue(url: str, *ts: Transition) -> None:
    conn = sqldb.connect(url)
    try:
        pg_enqueue(conn, ts)
    finally:
        conn.close()


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = sqldb.connect(url)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def take_over(url: str, a: lease.Leases, b: lease.Leases) -> None:
    """A is not stepped again: its lease runs out in the database, then B takes partition 0 at the next epoch."""
    epoch = a.held[0]
    deadline = time.monotonic() + 30
    while query(url, "SELECT 1 FROM engine_leases WHERE p = 0 AND expires > extract(epoch from clock_timestamp())"):
        assert time.monotonic() < deadline, "A's lease never expired"
        time.sleep(0.1)
    assert b.step().gained == {0: epoch + 1}


async def test_a_dispatcher_whose_lease_was_taken_takes_no_row_and_stops(pg_url: str,
                                                                        members: tuple[lease.Leases, lease.Leases]
                                                                        ) -> None:
    a, b = members
    assert a.step().gained == {0: 1}
    sent_a, sent_b = RecordingSender(), RecordingSender()
    disp_a = Dispatcher(pg_url, NOW_CFG, sent_a, SystemClock(), fence=fence_of(a))
    disp_b = Dispatcher(pg_url, NOW_CFG, sent_b, SystemClock(), fence=fence_of(b))
    runner = asyncio.create_task(disp_a.run())
    try:
        before = [transition(rule=f"before-{i}", at=time.time()) for i in range(3)]
        enqueue(pg_url, *before)
        disp_a.wake()
        deadline = time.monotonic() + 30
        while len(sent_a.sent) < 3:  # A keeps its lease meanwhile
            assert time.monotonic() < deadline and not runner.done(), (sent_a.titles(), runner)
            await asyncio.to_thread(a.step)
            await asyncio.sleep(0.2)
        assert sorted(sent_a.titles()) == sorted(f"[FIRING critical] {t.rule} {t.series}" for t in before)

        await asyncio.to_thread(take_over, pg_url, a, b)
        after = [transition(rule=f"after-{i}", at=time.time()) for i in range(2)]
        enqueue(pg_url, *after)
        disp_a.wake()
        with pytest.raises(PartitionLost):
            await asyncio.wait_for(runner, 30)
        assert len(sent_a.sent) == 3 and sent_a.attempts == 3  # nothing queued after the take-over
        assert query(pg_url, f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE done = 0") == [(2,)]  # rolled back
        assert query(pg_url, "SELECT count(*) FROM notify_deliveries WHERE state != 'sent'") == [(0,)]

        # started again (as failover.py's restart would): still fenced, stops at its first write, sends nothing
        with pytest.raises(PartitionLost):
            await asyncio.wait_for(disp_a.run(), 30)
        assert sent_a.attempts == 3

        # the new holder's dispatcher delivers what A left
        await disp_b.step()
        assert sorted(sent_b.titles()) == sorted(f"[FIRING critical] {t.rule} {t.series}" for t in after)
        assert query(pg_url, f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE done = 0") == [(0,)]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        disp_a.close()
        disp_b.close()


async def test_a_delivery_due_again_is_not_marked_sending_after_the_lease_was_taken(
        pg_url: str, members: tuple[lease.Leases, lease.Leases]) -> None:
    a, b = members
    a.step()
    url = "json://127.0.0.1:9/staff"
    sender = RecordingSender(failures={url: 1})  # the first attempt fails: the delivery waits for its retry
    clock = ManualClock(START)
    disp = Dispatcher(pg_url, NOW_CFG, sender, clock, fence=fence_of(a))
    try:
        enqueue(pg_url, transition(at=START))
        await disp.step()
        assert sender.attempts == 1 and sender.sent == []
        assert query(pg_url, "SELECT state, attempts FROM notify_deliveries") == [("pending", 1)]

        take_over(pg_url, a, b)
        clock.set(START + 30)  # past the retry (5 s at first, with jitter), before the reconcile's minute
        with pytest.raises(Exception) as caught:  # an exception group: step()'s TaskGroup of sends
            await disp.step()
        assert caught.group_contains(PartitionLost)
        assert sender.attempts == 1 and sender.sent == []
        assert query(pg_url, "SELECT state, attempts FROM notify_deliveries") == [("pending", 1)]
    finally:
        disp.close()
