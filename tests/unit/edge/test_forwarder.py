"""What goes to the broker when: in-flight cap, acknowledgements, backlog rate and order."""

from __future__ import annotations

import json
from typing import Optional

from edge.forwarder import Forwarder
from edge.queue import MEMORY, ReadingQueue
from vigil.core.clock import ManualClock


class Broker:
    """An in-memory publisher: records what was sent and hands out message ids."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, int]] = []  # (mid, sensor, seq)
        self.up = True
        self._mid = 0

    def publish(self, topic: str, payload: bytes) -> Optional[int]:
        if not self.up:
            return None
        self._mid = self._mid % 65535 + 1
        self.sent.append((self._mid, topic.rsplit("/", 1)[1], json.loads(payload)["seq"]))
        return self._mid


def put(q: ReadingQueue, sensor: str) -> None:
    q.put(sensor, f"vigil/readings/pi/{sensor}", 0.0, lambda seq: json.dumps({"seq": seq}).encode())


def setup(max_inflight: int = 100, drain_rate: float = 10.0,
          live_first: bool = False) -> tuple[ReadingQueue, Forwarder, Broker, ManualClock]:
    clock = ManualClock()
    q = ReadingQueue(MEMORY, sync="always", clock=clock)
    return q, Forwarder(q, clock, max_inflight, drain_rate, live_first), Broker(), clock


def drain_with_live_readings(q: ReadingQueue, f: Forwarder, broker: Broker, clock: ManualClock) -> int:
    """100 readings buffered, then one live reading a second until the backlog is sent; the seconds."""
    for _ in range(100):
        put(q, "a")
    f.connected()
    seconds = 0
    while f.backlog_pending or f.inflight:
        put(q, "a")
        f.pump(broker.publish)
        for mid, _, _ in list(broker.sent[-30:]):
            f.acked(mid)
        clock.advance(1)
        seconds += 1
        assert seconds < 30
    f.pump(broker.publish)
    for mid, _, _ in list(broker.sent[-30:]):
        f.acked(mid)
    f.flush_acks()
    assert q.depth == 0 and not f.inflight
    return seconds


def test_a_reading_leaves_the_queue_only_when_acknowledged() -> None:
    q, f, broker, _ = setup()
    f.connected()
    put(q, "a")
    assert f.pump(broker.publish) == 1 and q.depth == 1
    f.pump(broker.publish)
    assert len(broker.sent) == 1  # in flight: not sent twice
    f.acked(broker.sent[0][0])
    f.pump(broker.publish)
    assert q.depth == 0
    q.close()


def test_unacknowledged_readings_go_again_after_a_reconnect_in_order() -> None:
    q, f, broker, clock = setup(drain_rate=1000)
    f.connected()
    for _ in range(3):
        put(q, "a")
    f.pump(broker.publish)
    f.acked(broker.sent[0][0])
    f.disconnected()
    f.connected()
    clock.advance(1)
    f.pump(broker.publish)
    assert [s[2] for s in broker.sent] == [0, 1, 2, 1, 2]
    q.close()


def test_in_flight_publishes_are_capped() -> None:
    q, f, broker, _ = setup(max_inflight=5)
    f.connected()
    for _ in range(20):
        put(q, "a")
    f.pump(broker.publish)
    assert len(broker.sent) == 5 and len(f.inflight) == 5
    for mid, _, _ in broker.sent[:2]:
        f.acked(mid)
    f.pump(broker.publish)
    assert len(broker.sent) == 7 and len(f.inflight) == 5
    q.close()


def test_by_default_the_backlog_drains_at_a_bounded_rate_and_every_reading_keeps_its_order() -> None:
    q, f, broker, clock = setup(drain_rate=10)
    seconds = drain_with_live_readings(q, f, broker, clock)
    seqs = [s[2] for s in broker.sent]
    assert seqs == list(range(len(seqs)))  # every reading, once, in order
    assert 10 <= seconds <= 13  # 100 buffered + 1 a second, at 10 a second


def test_live_first_sends_new_readings_at_once_interleaved_with_the_backlog() -> None:
    q, f, broker, clock = setup(drain_rate=10, live_first=True)
    seconds = drain_with_live_readings(q, f, broker, clock)
    seqs = [s[2] for s in broker.sent]
    assert sorted(seqs) == list(range(len(seqs)))  # every reading, once
    backlog = [s for s in seqs if s < 100]
    live = [s for s in seqs if s >= 100]
    assert backlog == sorted(backlog) and live == sorted(live)  # each stream in order
    assert seqs[0] == 100  # the first live reading went out right away, before the backlog
    assert 9 <= seconds <= 12  # 100 buffered readings at 10 a second


def test_a_refused_publish_stays_queued_and_rejections_are_counted() -> None:
    q, f, broker, _ = setup()
    f.connected()
    put(q, "a")
    broker.up = False
    assert f.pump(broker.publish) == 0 and q.depth == 1
    broker.up = True
    f.pump(broker.publish)
    f.acked(broker.sent[0][0], ok=False)
    f.pump(broker.publish)
    assert f.rejected == 1 and q.depth == 0
    q.close()
