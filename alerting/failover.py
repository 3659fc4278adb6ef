"""Several rule engines on one PostgreSQL state: the series' partitions owned through leases, and taken over by
the others when an engine dies (``vigil alerting --state postgresql://...``; docs/scaling.md, "Rule-engine
failover").

The series are split into ``alerting.partitions`` partitions (crc32 of the series id, as ``--partition I/N``).
Every engine process is a member of the deployment (alerting/lease.py): it holds a fair share of the partitions,
each under a lease with an epoch in the database, renewed every few seconds; the partitions of a member whose
leases ran out (it died, or lost the database) are taken by the others, and a member that joins is handed its
share by the others.

For each partition it holds, a process runs one engine exactly as a lone engine with ``--partition p/N`` runs,
on the shared tables, with MQTT client id ``<client_id>-p<p>``. The broker keeps that client id's persistent
session whichever process holds the partition, so a takeover is a restart elsewhere, with what a restart
guarantees: the readings the dead owner had not acknowledged come to the new owner, pending timers and firing
alerts are read from the shared tables (alerting/engine.py ``_restore``), and nothing is told twice. Every
commit of an engine is fenced by its lease's epoch inside the commit's transaction (``lease.fence``): an owner
whose lease was taken (a paused process) cannot commit a state change or a notification, and a takeover waits
for a commit in flight.

The dispatcher (notifications), the pipeline watchdog and the scheduled reports run with partition 0, so once
in the deployment; the dispatcher takes the other partitions' notifications from the shared outbox. Its loop's
writes (taking outbox entries, queueing, marking a delivery 'sending') are fenced by partition 0's lease at the
epoch held now: a paused holder that resumes takes nothing and starts no send; its dispatcher stops (PartitionLost)
and partition 0's engine with it, as when an engine's commit is fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from alerting import lease
from alerting import metrics as alerting_metrics
from alerting.delivery import make_dispatcher, warm_apprise
from alerting.engine import PartitionLost
from alerting.guard import supervised
from alerting.notify.outbox import Outbox
from alerting.service import AlertService, _load_rules, engine_parts, open_history, run_engine
from alerting.settings import AlertingSettings
from alerting.state import StateDB, immediate_transaction
from vigil.core import sqldb
from vigil.core.clock import Clock
from vigil.core.settings import MqttSettings, StoreSettings
from vigil.core.sqldb import redact
from vigil.core.stores import Store

__all__ = ["serve_shared"]

log = logging.getLogger(__name__)

#: seconds before a partition's engine that stopped (its lease still held) starts again
RESTART = 1.0
#: seconds after which a partition's engine that is slow to stop is logged
SLOW_STOP = 5.0


async def serve_shared(settings: AlertingSettings, mqtt: MqttSettings, store: Union[Store, StoreSettings], *,
                       public_url: Optional[str], zone: Optional[dt.tzinfo], clock: Clock,
                       ready: Optional[asyncio.Event], data_dir: Optional[str]) -> None:
    """Be a member of the deployment on ``settings.state`` until cancelled; a clean stop hands this process's
    partitions over at once."""
    count = settings.partitions
    member = f"{settings.client_id}@{socket.gethostname()}:{os.getpid()}"
    local = Path(data_dir or "vigil-data")
    local.mkdir(parents=True, exist_ok=True)
    rules = _load_rules(settings.rules)
    with contextlib.ExitStack() as closing:
        members = lease.Leases(settings.state, member, partitions=count)
        closing.callback(members.close)

        def make_schema() -> None:  # the engine's tables, and the outbox's, before the dispatcher reads them
            schema = StateDB(settings.state)
            try:
                Outbox(schema.conn).create_tables()
            finally:
                schema.close()

        await _transient(make_schema)
        history = open_history(store, rules, closing)
        delivering: dict[int, int] = {}  # {0: epoch} while this process holds partition 0: its dispatcher delivers

        # the dispatcher's loop takes an outbox entry or starts a send only under partition 0's lease, at the epoch
        # held now (the dispatcher outlives a tenure: it is the process's, for every partition's acks)
        dispatcher = await _transient(lambda: make_dispatcher(
            settings.state, rules.notify, clock, zone=zone, public_url=public_url, secret_dir=data_dir,
            fence=_fence(member, 0, count, lambda: delivering.get(0))))
        closing.callback(dispatcher.close)
        await asyncio.to_thread(warm_apprise)
        log.info("rule engine %s: a member on %s, %d partitions", member, redact(settings.state), count)
        running: dict[int, asyncio.Task[None]] = {}
        # the engines running now, for the metrics: one endpoint for the process, a sample per partition held
        services: dict[int, AlertService] = {}
        shown = asyncio.create_task(supervised("alerting-metrics", partial(
            alerting_metrics.show, alerting_metrics.SharedMetrics(services, settings.state), settings.metrics_listen),
            Counter()), name="alerting-metrics")

        async def one(p: int, epoch: int) -> None:
            mine = settings.model_copy(update={"client_id": f"{settings.client_id}-p{p}", "partition": f"{p}/{count}"})
            in_hand = local / f"in-hand-{mine.client_id}.db"  # this process's: the broker redelivers to the next
            fence = _fence(member, p, count, lambda: epoch)
            if p == 0:
                delivering[0] = epoch
            said = False
            while True:  # until cancelled: the lease runner stops it when the partition is no longer held
                if not await asyncio.to_thread(_still_held, settings.state, fence):
                    # another member holds it now (this member's runner has not seen it yet): connecting would take
                    # the partition's broker session from its holder, whose acknowledgements would be lost and its
                    # readings judged twice; wait for the runner instead
                    if not said:
                        log.warning("partition %d/%d: its lease is another member's now; its engine waits", p, count)
                        said = True
                    await asyncio.sleep(RESTART)
                    continue
                said = False
                try:
                    # partition 0's engine makes the scheduled reports (their files in this process's data
                    # directory), each run claimed in the shared table under partition 0's fence: sent once
                    async with engine_parts(mine, mqtt, rules, history, store, clock, public_url=public_url,
                                            zone=zone, data_dir=str(local), in_hand=in_hand, fence=fence,
                                            dispatcher=dispatcher, reports=p == 0) as (service, disp, reports):
                        services[p] = service
                        try:
                            await run_engine(service, disp, history, clock, ready, reports, deliver=p == 0,
                                             metrics=False)
                        finally:
                            if services.get(p) is service:
                                del services[p]
                except Exception as exc:  # PartitionLost (a lease taken, the database lost) or a failed start
                    current = asyncio.current_task()
                    if current is None or running.get(p) is not current:
                        # stopped (stop() below) while its engine failed: the engine's TaskGroup raised the failure
                        # instead of the cancellation. Going on would run an engine for a partition no longer held
                        # (fenced, but it takes the broker session from the partition's new holder, over and over)
                        # and keep stop(), hence the lease runner, waiting forever
                        raise asyncio.CancelledError from exc
                    while current.cancelling():  # Python 3.11's TaskGroup leaves its own cancel request counted
                        current.uncancel()
                    # from the database again: a stale owner's start is fenced like its commits
                    log.warning("partition %d/%d: its engine stopped (%s); starting it again in %.0f s", p, count,
                                _first(exc), RESTART)
                await asyncio.sleep(RESTART)

        stopping: dict[int, asyncio.Task[None]] = {}  # engines cancelled, not finished yet

        async def stop(p: int, wait: bool = True) -> None:
            """Stop partition ``p``'s engine; without ``wait``, one slow to stop is left to finish by itself (it is
            fenced, and the lease runner, which waits meanwhile, must go on renewing the other leases)."""
            task = running.pop(p, None)
            if p == 0:
                delivering.pop(0, None)  # no delivery until partition 0 is held again, at its new epoch
            if task is not None:
                task.cancel()
                stopping[p] = task
            task = stopping.get(p)
            if task is None:
                return
            done, _ = await asyncio.wait({task}, timeout=SLOW_STOP)
            if not done:
                log.warning("partition %d/%d: its engine takes more than %.0f s to stop; waiting in: %s", p, count,
                            SLOW_STOP, _waiting())
                if not wait:
                    return
                await asyncio.wait({task})
            stopping.pop(p, None)
            with contextlib.suppress(asyncio.CancelledError, PartitionLost):
                await task

        async def changed(gained: dict[int, int], lost: set[int]) -> None:
            for p in sorted(lost):
                log.warning("partition %d/%d: no longer held; its engine stops", p, count)
                await stop(p, wait=False)
            for p, epoch in sorted(gained.items()):
                await stop(p)  # the old engine gone before the new one takes the partition's broker session
                log.info("partition %d/%d: held (epoch %d); its engine starts", p, count, epoch)
                task = running[p] = asyncio.create_task(one(p, epoch), name=f"alerting-partition-{p}")
                task.add_done_callback(_said)

        try:
            await lease.run(members, changed)
        finally:
            for p in sorted({*running, *stopping}):
                await stop(p)
            shown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shown
            with contextlib.suppress(Exception):
                await asyncio.to_thread(members.leave)


def _fence(member: str, p: int, count: int, epoch: Callable[[], Optional[int]]) -> Callable[[Any], None]:
    """A commit's fence (called inside its transaction): partition ``p``'s lease is still ``member``'s at the epoch
    ``epoch()`` says (None: not held), else :class:`PartitionLost` and the transaction rolls back."""

    def fence(conn: Any) -> None:
        held = epoch()
        try:
            if held is None:
                raise lease.LeaseLost({p})
            lease.fence(conn, member, {p: held})
        except lease.LeaseLost as exc:
            raise PartitionLost(f"partition {p}/{count} is no longer this engine's ({exc})") from exc

    return fence


T = TypeVar("T")


async def _transient(make: Callable[[], T], attempts: int = 10) -> T:
    """``make()``, tried again (up to ``attempts`` times, a second apart) while it fails on what passes by itself: a
    deadlock or a lock wait with the other members' commits (their tables being made at the same time as a member
    joins under load). A database that cannot be reached fails at once, with its own clear error."""
    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            return make()
        except Exception as exc:
            cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
            passing = isinstance(cause, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                                         psycopg.errors.LockNotAvailable))
            if not passing or attempt == attempts:
                raise
            log.warning("state database busy at start (%s); trying again in 1 s", type(cause).__name__)
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


def _still_held(state: str, fence: Callable[[Any], None]) -> bool:
    """Whether ``fence`` passes now (a transaction of its own); a database that cannot answer says nothing (True):
    the engine's start fails on it as it would."""
    try:
        conn = sqldb.connect(state, application_name="vigil-lease-probe")
    except Exception:
        return True
    try:
        with immediate_transaction(conn):
            fence(conn)
        return True
    except PartitionLost:
        return False
    except Exception:
        return True
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _waiting() -> str:
    """Where this process's unfinished tasks wait (each one's chain of awaits), for a stop that takes long."""
    out = []
    for task in asyncio.all_tasks():
        if task.done() or task is asyncio.current_task():
            continue
        chain: list[str] = []
        coro: Any = task.get_coro()
        while coro is not None and len(chain) < 12:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        out.append(f"{task.get_name()} [{' > '.join(chain)}]")
    return "; ".join(sorted(out)[:40])


def _first(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (a TaskGroup's), or the exception itself."""
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


def _said(task: asyncio.Task[None]) -> None:
    """An engine that ended by itself (it could not start: its rules, the database) is logged; the lease stays
    until the member leaves, so the operator sees it in the log rather than partitions that move around."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended: %s", task.get_name(), task.exception())
