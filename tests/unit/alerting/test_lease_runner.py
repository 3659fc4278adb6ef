"""alerting.lease.run's own logic with a stand-in for Leases (the database side is tested on a real PostgreSQL in
tests/integration/alerting/test_leases.py): what it tells, when it gives leases up, and what a hung step does."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest

from alerting.lease import Change, run


class StandIn:
    """Leases' interface for run(): each step runs the next scripted action in the worker thread."""

    def __init__(self, script: list[Callable[[StandIn], Any]]) -> None:
        self.member_id, self.interval, self.ttl = "m", 0.05, 0.3
        self.script = script
        self.held: dict[int, int] = {}
        self.deadline = float("-inf")
        self.left = False

    def step(self) -> Change:
        action = self.script.pop(0) if self.script else (lambda s: s.renew())
        action(self)
        return Change()

    def renew(self) -> None:
        self.deadline = time.monotonic() + self.ttl

    def expire(self) -> set[int]:
        lost, self.held = set(self.held), {}
        return lost

    def leave(self) -> None:
        self.left = True


def hold(held: dict[int, int]) -> Callable[[StandIn], None]:
    def action(s: StandIn) -> None:
        s.held = dict(held)
        s.renew()
    return action


def fail(s: StandIn) -> None:
    raise ConnectionError("database away")


async def collect(leases: StandIn, until: Callable[[list[Change]], bool], timeout: float = 10) -> list[Change]:
    told: list[Change] = []
    task = asyncio.create_task(run(leases, lambda gained, lost: told.append(Change(gained, lost))))  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while not until(told) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not leases.left  # the caller leaves, once it has stopped what it runs for its partitions
    return told


async def test_changes_are_told_relative_to_what_was_told_before() -> None:
    s = StandIn([hold({0: 1, 1: 1}), hold({0: 1, 1: 1}), hold({0: 1, 2: 3}), hold({0: 4, 2: 3})])
    told = await collect(s, lambda t: len(t) >= 3)
    assert told[:3] == [Change(gained={0: 1, 1: 1}), Change(gained={2: 3}, lost={1}),
                        Change(gained={0: 4}, lost={0})]  # p0 retaken at a new epoch: dropped, then loaded


async def test_failing_steps_keep_the_leases_until_their_deadline_then_they_are_lost_and_taken_again(
        caplog: pytest.LogCaptureFixture) -> None:
    s = StandIn([hold({5: 1}), *[fail] * 12, hold({5: 2})])
    told = await collect(s, lambda t: len(t) >= 3)
    assert told[:3] == [Change(gained={5: 1}), Change(lost={5}), Change(gained={5: 2})]
    assert "unreachable or slow (database away)" in caplog.text and "partitions [5] treated as lost" in caplog.text


async def test_a_hung_step_does_not_keep_leases_past_their_deadline_and_no_second_step_starts() -> None:
    release = threading.Event()
    running: list[int] = []

    def hang(s: StandIn) -> None:
        running.append(1)
        assert release.wait(10)

    s = StandIn([hold({7: 1}), hang])
    # the hung step is let go once the loss was told (the stopping runner waits for it)
    told = await collect(s, lambda t: len(t) >= 2 and (release.set() or True))
    assert told[:2] == [Change(gained={7: 1}), Change(lost={7})] and running == [1]
