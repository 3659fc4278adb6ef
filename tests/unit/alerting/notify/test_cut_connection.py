"""The notification state's connection cut at every statement of a firing's way to the receiver, once, before the
statement takes effect or after it (its answer lost: what a PostgreSQL connection killed by a server stop does):
the firing and its resolve are each told, the firing at most twice and then marked as a possible duplicate, the
resolve once. It found a transaction left open after a BEGIN or COMMIT that raised (every later BEGIN failing), and
a firing taken from the outbox whose reconcile was cut off never told (its in-memory mark dropped first)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alerting.notify import Dispatcher
from alerting.transition import AlertState
from tests.support.dispatcher import START, Harness, config, transition

#: the statements cut, one per run: the firing's way, the passes between, and the resolve's way (about 150)
CUTS = 160
IN_DOUBT = "(Vigil stopped while sending this message; you may have received it already.)\n"


class _Cut(sqlite3.Connection):
    """Counts statements; raises on the ``at``-th, before running it or (``after``) once it ran."""

    n = 0
    at = -1
    after = False

    def _cut(self, run: Any) -> Any:
        cls = type(self)
        cls.n += 1
        if cls.n == cls.at and not cls.after:
            raise sqlite3.OperationalError("the connection is lost (test)")
        out = run()
        if cls.n == cls.at:
            out.close()  # its answer lost with the connection (an open SQLite cursor would keep its old snapshot)
            raise sqlite3.OperationalError("the connection is lost after the statement (test)")
        return out

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
        return self._cut(lambda: super(_Cut, self).execute(sql, params))  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._cut(lambda: super(_Cut, self).executemany(sql, rows))  # type: ignore[no-any-return]


async def _told(tmp_path: Path, at: int, after: bool) -> list[str]:
    h = Harness(tmp_path / "alerts.db", config(grouping={"group_wait": "0s", "group_interval": "1s"}))
    try:
        h.dispatcher.close()
        h.dispatcher = Dispatcher(functools.partial(sqlite3.connect, str(h.path), isolation_level=None,
                                                    check_same_thread=False, factory=_Cut), h.config, h.sender, h.clock)
        _Cut.n, _Cut.at, _Cut.after = 0, at, after
        runner = asyncio.create_task(h.dispatcher.run())

        async def passes(until: str) -> None:
            """Passes (the clock half a second on, the dispatcher woken) until ``until`` was sent, then ten more."""
            more = 10
            for _ in range(400):
                h.clock.set(h.clock.now() + 0.5)
                h.dispatcher.wake()
                await asyncio.sleep(0.001)
                if any(m.title.startswith(until) for m in h.sender.sent):
                    more -= 1
                    if not more:
                        return

        h.enqueue(transition())
        await passes("[FIRING")
        h.enqueue(transition(state=AlertState.RESOLVED, at=START + 100))
        await passes("[RESOLVED")
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        return [("again " if m.body.startswith(IN_DOUBT) else "") + m.title.split()[0] for m in h.sender.sent]
    finally:
        _Cut.at = -1
        h.close()


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_a_cut_at_any_statement_loses_nothing_and_repeats_only_marked(tmp_path: Path, after: bool) -> None:
    for at in range(1, CUTS + 1):
        (tmp_path / f"{at}").mkdir()
        told = await _told(tmp_path / f"{at}", at, after)
        # each told once; or, where its 'sending' mark committed but the send's start or outcome was cut off, sent
        # (again) saying it may be a duplicate: never lost, never twice unmarked, the firing first
        for kind in ("[FIRING", "[RESOLVED"):
            copies = [t for t in told if t.endswith(kind)]
            assert copies in ([kind], [kind, f"again {kind}"], [f"again {kind}"]), (at, after, told)
        assert told[-1].endswith("[RESOLVED"), (at, after, told)


async def test_a_firing_whose_reconcile_was_cut_off_is_still_told(tmp_path: Path) -> None:
    """The outbox entry taken and the alert recorded (committed), then the connection lost before the reconcile that
    queues what the alert owes its receivers: the next pass reconciles it again (the mark of the touched alert was
    dropped before its reconcile committed, so it waited for the next full reconcile: hours)."""
    h = Harness(tmp_path / "alerts.db", config(grouping={"group_wait": "0s", "group_interval": "1s"}))
    try:
        h.dispatcher.close()
        h.dispatcher = Dispatcher(functools.partial(sqlite3.connect, str(h.path), isolation_level=None,
                                                    check_same_thread=False, factory=_Cut), h.config, h.sender, h.clock)
        runner = asyncio.create_task(h.dispatcher.run())
        for _ in range(5):  # the start's full reconcile done
            h.clock.set(h.clock.now() + 0.01)
            h.dispatcher.wake()
            await asyncio.sleep(0.001)
        _Cut.n, _Cut.after = 0, False
        _Cut.at = -1
        h.enqueue(transition())
        reconcile = "SELECT receiver, told_at FROM notify_told"  # the reconcile's first statement, and only its


        original = _Cut.execute

        def execute(conn: _Cut, sql: str, params: Any = ()) -> sqlite3.Cursor:
            if sql.startswith(reconcile) and _Cut.at == -1:
                _Cut.at = -2
                raise sqlite3.OperationalError("the connection is lost (test)")
            return original(conn, sql, params)

        _Cut.execute = execute  # type: ignore[method-assign]
        try:
            for _ in range(50):  # 0.5 s of the clock: no timer is due, no full reconcile comes by itself
                h.clock.set(h.clock.now() + 0.01)
                h.dispatcher.wake()
                await asyncio.sleep(0.001)
        finally:
            _Cut.execute = original  # type: ignore[method-assign]
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        assert _Cut.at == -2  # the cut happened
        assert [m.title.split()[0] for m in h.sender.sent] == ["[FIRING"]
    finally:
        _Cut.at = -1
        h.close()
