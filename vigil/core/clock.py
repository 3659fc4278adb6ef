"""Injected time: the real clock, and a manual one that tests move forward by hand.

One protocol for every part: ``now()`` (wall time, for timestamps and rules), ``monotonic()``
(for schedules and timeouts) and ``sleep()`` (for asyncio services). Standard library only, and
``asyncio`` is imported on the first ``sleep``: the edge agent imports this module on a Pi and never
sleeps through it (docs/edge.md, Footprint).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Current time, epoch seconds."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes backwards (schedules, timeouts)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when ``set`` or ``advance`` is called; sleepers wake when their time comes.

    It never goes backwards, so its wall time is also its monotonic time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, fut))
        await fut

    def set(self, t: float) -> None:
        """Jump to ``t`` (may not go backwards) and wake every sleeper whose time has come."""
        if t < self._now:
            raise ValueError("a ManualClock does not go backwards")
        self._now = t
        due = [(when, f) for when, f in self._sleepers if when <= t]
        self._sleepers = [(when, f) for when, f in self._sleepers if when > t]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)
