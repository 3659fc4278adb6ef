"""A member starting on a shared state under load: its tables and its dispatcher's are made again after a deadlock
with the other members' commits (a joining engine died of one); a database it cannot reach fails at once."""

from __future__ import annotations

import psycopg
import pytest

from alerting import failover
from alerting.failover import _transient


async def test_a_deadlock_at_start_is_tried_again_and_an_unreachable_database_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(failover.asyncio, "sleep", no_wait)
    calls: list[int] = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.errors.DeadlockDetected("deadlock detected (test)")
        return "made"

    assert await _transient(busy_twice) == "made" and len(calls) == 3

    def unreachable() -> None:
        calls.append(1)
        raise psycopg.OperationalError("connection refused (test)")

    calls.clear()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        await _transient(unreachable)
    assert len(calls) == 1
