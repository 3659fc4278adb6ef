"""What the broker failover tests share: the rules they load, the readings they find stored, and the
readings an edge agent queued (to compare, as sets of (sensor, time), with what was stored)."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from edge.queue import ReadingQueue
from tests.support.procs import Receiver, VigilProcess
from tests.support.services import wait_until

__all__ = ["assert_each_stored_and_notified_once", "connected_to", "record_queued", "rules_file", "stored",
           "stored_keys"]


class _Broker(Protocol):
    @property
    def url(self) -> str: ...


def rules_file(tmp_path: Path, receiver: Receiver) -> Path:
    """A rule that fires for every temperature, notifying ``receiver`` once per series."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""\
receivers:
  ops: ["{receiver.url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - name: too-warm
    match: {{metric: temperature}}
    above: -100
    severity: warning
    notify: ops
""")
    return rules


def stored(db: Path) -> dict[str, tuple[int, int]]:
    """Per sensor of pi-1: rows stored and distinct times among them."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sensor, count(*), count(DISTINCT ts) FROM readings WHERE device = 'pi-1' "
                            "GROUP BY sensor").fetchall()
    return {sensor: (n, distinct) for sensor, n, distinct in rows}


def stored_keys(db: Path) -> Counter[tuple[str, int]]:
    """Every stored reading of pi-1 as (sensor, time in ms): a count above 1 would be a duplicate."""
    with sqlite3.connect(db) as conn:
        return Counter((sensor, round(ts / 1000)) for sensor, ts in
                       conn.execute("SELECT sensor, ts FROM readings WHERE device = 'pi-1'"))


def record_queued(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, int]]:
    """From now on, every reading an agent queues, as (sensor, time in ms as sent): the readings to find stored.
    Two readings of one sensor in one millisecond are one reading to the store (keyed by series and time)."""
    keys: set[tuple[str, int]] = set()
    put = ReadingQueue.put

    def recording(self: ReadingQueue, sensor: str, topic: str, ts: float, build: Callable[[int], bytes]) -> int:
        seq = put(self, sensor, topic, ts, build)
        keys.add((sensor, round(round(ts, 3) * 1000)))  # as the payload carries it
        return seq

    monkeypatch.setattr(ReadingQueue, "put", recording)
    return keys


def connected_to(proc: VigilProcess, broker: _Broker) -> bool:
    """The bridge or the engine said it connected to ``broker``."""
    out = proc.output()
    return f"connected to {broker.url}" in out or f"connected to the broker {broker.url}" in out


def assert_each_stored_and_notified_once(db: Path, queued: set[tuple[str, int]], receiver: Receiver,
                                         sensors: tuple[str, ...]) -> None:
    """Every reading the agent queued is stored exactly once, and each sensor's alert notified once
    (by the rules of :func:`rules_file`)."""
    assert wait_until(lambda: set(stored_keys(db)) == queued, timeout=30), \
        (len(stored_keys(db)), len(queued), sorted(queued - set(stored_keys(db)))[:10])
    assert max(stored_keys(db).values()) == 1
    time.sleep(1.5)  # a second notification, if any, would arrive now
    titles = Counter(body["title"] for body in receiver.bodies)
    assert titles == Counter(f"[FIRING warning] too-warm pi-1/{s}/temperature" for s in sensors), titles
