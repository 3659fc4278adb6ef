"""Who owns which partition of the series, when several rule engines share one PostgreSQL database.

The series are cut into P logical partitions (:func:`partition_of`, a fixed P per deployment, 16 by default).
Each engine instance is a *member*; it holds a time-limited *lease* on some partitions and owns exactly the series
of those. Two tables in the shared database say who is alive and who holds what::

    engine_members(id TEXT PRIMARY KEY, expires DOUBLE PRECISION, beat DOUBLE PRECISION)
    engine_leases(p INTEGER PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL, expires DOUBLE PRECISION)

Every time is the database's clock (``clock_timestamp()`` in Unix seconds), never an instance's, so the clocks of
the machines need not agree. :meth:`Leases.step` (every ``interval`` s, 2 by default) heartbeats the member row,
renews the member's leases for ``ttl`` s (10 by default), and balances: a member's fair share is ceil(P / live
members); it takes expired or unowned partitions while under its share and releases those above it (a joining
member gets some at once). Each take increments the partition's *epoch*, so an epoch names one tenure of one owner
(a member also retakes, at a new epoch, a row still in its name that it no longer holds: after a failed step, or
after the runner gave it up while the database was away). A renewal only extends a row still the member's at the
epoch it holds; a lease found taken or released is dropped at once.
A dead member's partitions are taken within ``ttl + interval`` (12 s by default) of its last renewal; a member that
stops with :meth:`Leases.leave` hands its partitions over at the next step of the others.

Guarantee (fencing). A lease alone does not stop a paused process (GC, SIGSTOP, a swapped-out VM) from writing
after its lease expired and another member took the partition. So every write of an owner's state goes in a
transaction that calls :func:`fence` with the epochs it holds. ``fence`` runs, inside that transaction::

    SELECT p FROM engine_leases WHERE p = ANY(...) AND owner = me AND epoch = <held epoch> AND expires > now
    FOR SHARE

and raises :class:`LeaseLost` (the transaction must roll back) unless every partition is still the caller's, at the
same epoch, unexpired. The rows it returns stay share-locked until the transaction ends, and every change of a lease
row (take, renew, release) is an UPDATE, which must wait for that lock. Hence, for a transaction T fenced on
partition p at epoch e, on a READ COMMITTED transaction (PostgreSQL's default):

- if T commits, its commit precedes the take that starts epoch e+1: that take waits for T, re-reads the row, and
  the new owner's reads after its take see everything T wrote. Nothing committed under epoch e is missed by the
  owner of epoch e+1, however long T ran after its fence (the lease may expire meanwhile: no one can take it);
- if the take of epoch e+1 came first (or the lease had expired, or was released), ``fence`` sees another epoch,
  owner or an expired lease, and raises: a stale owner cannot commit.

A ``fence`` that raises says nothing about the future: the lease may still be the member's (expired, not yet taken)
and be renewed at its next step. The engine's answer is the same either way: roll back, drop what it holds in memory
for those partitions, and load them again from the database before it uses them.

This holds only for writes made in fenced transactions on the same database; anything outside it (an MQTT message,
a notification already sent) is not fenced, and it assumes one PostgreSQL primary (a failover to an asynchronous
standby can lose committed transactions, lease rows included). A take waits at most ``lock_timeout`` (ttl/3 by
default) for an in-flight fenced transaction, then the member takes nothing more in that step; so a member frozen
inside a fenced transaction delays the takeover of the partitions it locked until its server session ends (set
``idle_in_transaction_session_timeout`` on the engine's connections), but its lock never keeps another member from
renewing its own leases in time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from alerting.partition import partition_of
from vigil.core.sqldb import PgConnection

__all__ = ["DEFAULT_PARTITIONS", "Change", "LeaseLost", "Leases", "PartitionCountError", "ensure_tables", "fence",
           "partition_of", "run"]

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 16
NOW = "extract(epoch from clock_timestamp())::double precision"  # the database's clock, Unix seconds
_SCHEMA_LOCK = 0x76696769  # pg_advisory_xact_lock key: one member creates the tables at a time ("vigi")


class LeaseLost(Exception):
    """A fenced transaction's partitions are no longer the caller's (taken, released or expired): roll back."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(f"leases lost on partitions {sorted(partitions)}: another member may own them")
        self.partitions = partitions


class PartitionCountError(RuntimeError):
    """The shared database was set up with another partition count than this instance's."""


@dataclass
class Change:
    """What one step changed: partitions gained (with their new epochs) and partitions lost or released. One in both
    was retaken at a new epoch: drop it, then load it again."""

    gained: dict[int, int] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.gained or self.lost)


def ensure_tables(conn: PgConnection, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the two tables and the P lease rows if missing; PartitionCountError if they exist with another P."""
    if partitions < 1:
        raise ValueError(f"the partition count must be at least 1, got {partitions}")
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        conn.executescript(
            "CREATE TABLE IF NOT EXISTS engine_members (id TEXT PRIMARY KEY, expires DOUBLE PRECISION NOT NULL,"
            " beat DOUBLE PRECISION NOT NULL);"
            "CREATE TABLE IF NOT EXISTS engine_leases (p INTEGER PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL,"
            " expires DOUBLE PRECISION NOT NULL)")
        count, top = conn.execute("SELECT count(*), coalesce(max(p), -1) FROM engine_leases").fetchone()
        if count == 0:
            conn.execute("INSERT INTO engine_leases (p, owner, epoch, expires)"
                         " SELECT g, NULL, 0, 0 FROM generate_series(0, ?) AS g", (partitions - 1,))
        elif count != partitions or top != partitions - 1:
            raise PartitionCountError(
                f"the shared database's engine_leases has {count} partitions but this instance was started with "
                f"{partitions}: every engine of a deployment must use the same partition count")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def fence(conn: PgConnection, member_id: str, held: Mapping[int, int]) -> None:
    """Inside the caller's open transaction: share-lock the lease rows of ``held`` ({partition: epoch}) and raise
    :class:`LeaseLost` unless each is still ``member_id``'s at that epoch and unexpired (module docstring)."""
    if not held:
        return
    if not conn.in_transaction:
        raise RuntimeError("fence() must run inside the transaction it protects (BEGIN first)")
    ps = sorted(held)
    rows = conn.execute(
        f"SELECT l.p FROM engine_leases AS l JOIN unnest(?::integer[], ?::bigint[]) AS h(p, epoch)"
        f" ON l.p = h.p AND l.epoch = h.epoch WHERE l.owner = ? AND l.expires > {NOW} ORDER BY l.p FOR SHARE OF l",
        (ps, [held[p] for p in ps], member_id)).fetchall()
    missing = set(ps) - {int(r[0]) for r in rows}
    if missing:
        raise LeaseLost(missing)


class Leases:
    """One member's leases. :meth:`step` is blocking (run it in a thread: :func:`run`); not thread-safe.

    ``db`` is the shared database's URL or a :class:`PgConnection` to it; a connection given becomes this object's
    (it closes it, and after a database error connects again to the same URL)."""

    def __init__(self, db: Union[str, PgConnection], member_id: str, *, partitions: int = DEFAULT_PARTITIONS,
                 ttl: float = 10.0, interval: float = 2.0, lock_timeout: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < interval < ttl:
            raise ValueError(f"the step interval ({interval} s) must be positive and shorter than the ttl ({ttl} s)")
        self.url = db if isinstance(db, str) else db.url
        self.member_id, self.partitions = member_id, partitions
        self.ttl, self.interval = ttl, interval
        self.lock_timeout = ttl / 3 if lock_timeout is None else lock_timeout
        self.clock = clock
        self.held: dict[int, int] = {}  # partition -> epoch, as of the last successful step
        self.deadline = -math.inf  # local clock: before it, every held lease is surely unexpired in the database
        self._conn: Optional[PgConnection] = None
        self._given = None if isinstance(db, str) else db

    def _db(self) -> PgConnection:
        if self._conn is None:
            name = f"vigil-lease-{self.member_id}"[:63]
            conn, self._given = self._given or PgConnection(self.url, application_name=name), None
            try:
                conn.execute(f"SET lock_timeout = {max(1, round(self.lock_timeout * 1000))}")  # 0 would be none
                ensure_tables(conn, self.partitions)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close; it is thrown away either way
                pass
            self._conn = None

    def step(self) -> Change:
        """One round (module docstring). On a database error the connection is dropped (the next step reconnects)
        and the error raised; :attr:`held` then is unchanged, and no lease in it is trusted after :attr:`deadline`."""
        try:
            return self._step()
        except BaseException:
            self._drop_connection()
            raise

    def _step(self) -> Change:
        import psycopg

        conn = self._db()
        started = self.clock()  # every renewal and take below sets expires >= (database time now) + ttl
        me, ttl = self.member_id, self.ttl
        conn.execute(f"INSERT INTO engine_members (id, expires, beat) VALUES (?, {NOW} + ?, {NOW})"
                     " ON CONFLICT (id) DO UPDATE SET expires = excluded.expires, beat = excluded.beat", (me, ttl))
        conn.execute(f"DELETE FROM engine_members WHERE expires < {NOW} - ?", (ttl,))
        held: dict[int, int] = {}
        if self.held:
            ps = sorted(self.held)
            rows = conn.execute(
                f"UPDATE engine_leases AS l SET expires = {NOW} + ? FROM unnest(?::integer[], ?::bigint[])"
                " AS h(p, epoch) WHERE l.p = h.p AND l.epoch = h.epoch AND l.owner = ? RETURNING l.p, l.epoch",
                (ttl, ps, [self.held[p] for p in ps], me)).fetchall()
            held = {int(p): int(e) for p, e in rows}
        change = Change(lost=set(self.held) - set(held))
        live = conn.execute(f"SELECT count(*) FROM engine_members WHERE expires > {NOW}").fetchone()[0]
        share = math.ceil(self.partitions / max(int(live), 1))
        if len(held) > share:
            extra = sorted(held)[share:]
            rows = conn.execute(
                "UPDATE engine_leases SET owner = NULL, expires = 0 WHERE p = ANY(?::integer[]) AND owner = ?"
                " RETURNING p", (extra, me)).fetchall()
            for (p,) in rows:
                del held[int(p)]
                change.lost.add(int(p))
        elif len(held) < share:
            # a row still ours but no longer held (a step that failed after its take) is taken again, new epoch
            free = [int(p) for (p,) in conn.execute(
                f"SELECT p FROM engine_leases WHERE owner IS NULL OR owner = ? OR expires < {NOW}", (me,)).fetchall()
                    if int(p) not in held]
            random.shuffle(free)  # members that take at once mostly try different rows
            for p in free:
                if len(held) >= share:
                    break
                try:
                    row = conn.execute(
                        f"UPDATE engine_leases SET owner = ?, epoch = epoch + 1, expires = {NOW} + ?"
                        f" WHERE p = ? AND (owner IS NULL OR owner = ? OR expires < {NOW}) RETURNING epoch",
                        (me, ttl, p, me)).fetchone()
                except psycopg.errors.LockNotAvailable:
                    break  # a fenced commit of its owner is in flight (or frozen): no more takes in this step
                if row is not None:
                    held[p] = change.gained[p] = int(row[0])  # in lost too if it was ours at another epoch
        self.held, self.deadline = held, started + ttl
        return change

    def expire(self) -> set[int]:
        """Forget every held lease (its renewal failed until :attr:`deadline`); returns them."""
        lost, self.held = set(self.held), {}
        return lost

    def leave(self) -> None:
        """Release every partition held and delete the member row: a clean stop hands over at once."""
        try:
            conn = self._db()
            conn.execute("UPDATE engine_leases SET owner = NULL, expires = 0 WHERE owner = ?", (self.member_id,))
            conn.execute("DELETE FROM engine_members WHERE id = ?", (self.member_id,))
            self.held = {}
        finally:
            self._drop_connection()

    def close(self) -> None:
        """Close the connection without releasing anything (the leases expire after the ttl)."""
        self._drop_connection()
        if self._given is not None:
            self._given.close()
            self._given = None


OnChange = Callable[[dict[int, int], set[int]], Union[Awaitable[None], None]]


async def run(leases: Leases, on_change: OnChange, *, clock: Callable[[], float] = time.monotonic) -> None:
    """Step ``leases`` in a thread every ``leases.interval`` s and tell ``on_change(gained, lost)`` ({partition:
    epoch}, {partition}) what changed, relative to what it was told before: a partition in both was retaken at a new
    epoch (drop it, then load it again). While the database cannot be reached, the leases held
    are kept until :attr:`Leases.deadline` (they cannot have expired in the database before), then reported lost; the
    steps go on and take partitions again once it is back. A step that hangs counts as failed; no second step starts
    before it ends. When cancelled, the runner waits for its step and returns without releasing anything: the caller
    stops what it runs for its partitions, then calls :meth:`Leases.leave` (the others take over at their next step;
    without it, after the ttl)."""
    told: dict[int, int] = {}
    pending: Optional[asyncio.Future[Change]] = None
    failing = False
    try:
        while True:
            began = clock()
            if pending is None:
                pending = asyncio.ensure_future(asyncio.to_thread(leases.step))
            done, _ = await asyncio.wait({pending}, timeout=leases.interval)
            error = (pending.exception() or None) if done else TimeoutError("a step has not answered")
            if done:
                pending = None
            if isinstance(error, PartitionCountError):
                raise error  # a setting to fix, not an outage to wait out
            if error is None and failing:
                log.warning("lease member %s: state database reachable again", leases.member_id)
            elif error is not None and not failing:
                log.warning("lease member %s: state database unreachable or slow (%s); keeping %d partitions until "
                            "their leases would expire in %.1f s", leases.member_id, error, len(leases.held),
                            max(0.0, leases.deadline - clock()))
            failing = error is not None
            if leases.held and clock() >= leases.deadline:
                lost = leases.expire()
                log.warning("lease member %s: leases not renewed within the ttl: partitions %s treated as lost",
                            leases.member_id, sorted(lost))
            held = dict(leases.held)
            change = Change(gained={p: e for p, e in held.items() if told.get(p) != e},
                            lost={p for p, e in told.items() if held.get(p) != e})
            told = held
            if change:
                result = on_change(change.gained, change.lost)
                if inspect.isawaitable(result):
                    await result
            await asyncio.sleep(max(0.0, leases.interval - (clock() - began)))
    finally:
        if pending is not None:
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: a failing last step is no news at a stop
