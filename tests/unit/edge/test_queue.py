"""The on-disk queue: seq across restarts, group commits, bounds, and what a crash keeps."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from edge.errors import QueueError
from edge.queue import MEMORY, ReadingQueue, default_directory
from vigil.core.clock import ManualClock


def put(q: ReadingQueue, sensor: str = "t0", ts: float = 1_700_000_000.0) -> int:
    return q.put(sensor, f"vigil/readings/pi/{sensor}", ts, lambda seq: json.dumps({"seq": seq}).encode())


def test_seq_is_per_sensor_and_survives_a_restart(tmp_path: Path) -> None:
    q = ReadingQueue(str(tmp_path), sync="always")
    assert [put(q, "a"), put(q, "a"), put(q, "b"), put(q, "a")] == [0, 1, 0, 2]
    q.remove([r.id for r in q.fetch(0, 10**9, 100)])
    q.close()
    again = ReadingQueue(str(tmp_path), sync="always")
    assert (put(again, "a"), put(again, "b"), again.depth) == (3, 1, 2)
    again.close()


def test_batch_mode_commits_in_groups_and_sends_only_committed_rows(tmp_path: Path) -> None:
    clock = ManualClock()
    q = ReadingQueue(str(tmp_path), sync="batch", batch_interval=2.0, clock=clock)
    put(q)
    put(q)
    assert q.fetch(0, 10**9, 10) == []  # not committed yet: a crash now must not lose a sent seq
    clock.advance(2.0)
    q.tick()
    assert [r.seq for r in q.fetch(0, 10**9, 10)] == [0, 1]
    put(q)
    # A crash before the next group commit: another connection sees only the committed rows.
    other = sqlite3.connect(tmp_path / "queue.db")
    assert other.execute("SELECT seq FROM readings ORDER BY id").fetchall() == [(0,), (1,)]
    assert other.execute("SELECT last FROM seq").fetchall() == [(1,)]
    other.close()
    q.close()
    reopened = ReadingQueue(str(tmp_path), sync="batch", clock=clock)
    assert [r.seq for r in reopened.fetch(0, 10**9, 10)] == [0, 1, 2]  # a clean close commits
    reopened.close()


def test_a_full_queue_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    q = ReadingQueue(str(tmp_path), max_readings=10, sync="always")
    for _ in range(25):
        put(q)
    assert q.depth == 10 and q.dropped == 15
    assert [r.seq for r in q.fetch(0, 10**9, 100)] == list(range(15, 25))
    q.close()
    again = ReadingQueue(str(tmp_path), max_readings=10, sync="always")
    assert again.dropped == 15 and again.depth == 10
    again.close()


def test_readings_older_than_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    q = ReadingQueue(str(tmp_path), max_age=3600, sync="always", clock=clock)
    put(q, ts=clock.now() - 7200)
    put(q, ts=clock.now() - 60)
    q.tick()
    assert q.depth == 1 and q.dropped == 1
    assert [r.seq for r in q.fetch(0, 10**9, 10)] == [1]
    q.close()


def test_an_in_memory_queue_works_for_demos() -> None:
    q = ReadingQueue(MEMORY, sync="always")
    put(q)
    assert q.path == ":memory:" and [r.seq for r in q.fetch(0, 10**9, 10)] == [0]
    q.close()


def test_an_unwritable_directory_is_a_queue_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(QueueError, match="cannot open"):
        ReadingQueue(str(blocker / "sub"))


def test_a_removal_rides_on_the_next_commit_and_a_crash_before_it_only_resends(tmp_path: Path) -> None:
    q = ReadingQueue(str(tmp_path), sync="always")
    put(q)
    q.remove([r.id for r in q.fetch(0, 10**9, 10)])
    assert q.depth == 0
    other = sqlite3.connect(tmp_path / "queue.db")
    # A crash now: the acknowledged reading is still on disk and would be sent once more.
    assert other.execute("SELECT seq FROM readings").fetchall() == [(0,)]
    put(q)
    assert other.execute("SELECT seq FROM readings").fetchall() == [(1,)]
    other.close()
    q.close()


@pytest.mark.parametrize(("env", "expected"), [
    ({"STATE_DIRECTORY": "/var/lib/vigil-edge", "XDG_STATE_HOME": "/x", "HOME": "/home/pi"}, "/var/lib/vigil-edge"),
    ({"STATE_DIRECTORY": "/var/lib/vigil-edge:/var/lib/other", "HOME": "/home/pi"}, "/var/lib/vigil-edge"),
    ({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/pi"}, "/srv/state/vigil-edge"),
    ({"XDG_STATE_HOME": "relative/state", "HOME": "/home/pi"}, "/home/pi/.local/state/vigil-edge"),
    ({"STATE_DIRECTORY": "", "HOME": "/home/pi"}, "/home/pi/.local/state/vigil-edge"),
])
def test_the_default_directory_is_systemds_then_xdgs_state_directory(env: dict[str, str], expected: str) -> None:
    assert default_directory(env) == expected


def test_one_agent_at_a_time_uses_a_queue_and_the_second_is_told_which_holds_it(tmp_path: Path) -> None:
    first = ReadingQueue(str(tmp_path), sync="always", owner="device pi-1")
    with pytest.raises(QueueError) as info:
        ReadingQueue(str(tmp_path), owner="device pi-2")
    assert str(info.value) == (f"reading queue {tmp_path}/queue.db: in use by another vigil edge (device pi-1, pid "
                               f"{os.getpid()}); give this one a queue of its own with --queue DIR (buffer.path)")
    first.close()
    again = ReadingQueue(str(tmp_path), owner="device pi-2")
    again.close()
