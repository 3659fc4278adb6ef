"""A cancel that Python 3.11 can lose, found again.

Python 3.11's :func:`asyncio.wait_for`, with which aiomqtt awaits every answer (CONNACK, SUBACK, a PUBLISH's
PUBACK), returns the answer and drops a cancel that comes in the same turn of the event loop as it (its
``except CancelledError: if fut.done(): return fut.result()``; 3.12 rewrote it). The task goes on as if nobody had
asked it to stop: a loop that publishes runs for ever, and whoever cancelled it waits for ever, a TaskGroup among
them (a shared state's partition whose engine never stopped and never started again, its alerts untold: issue 18).
The cancel is still counted on the task, so a loop that awaits aiomqtt asks :func:`stop_if_cancelled` after it.
"""

from __future__ import annotations

import asyncio

__all__ = ["stop_if_cancelled"]


def stop_if_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` if the running task was asked to stop (and an await swallowed it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
