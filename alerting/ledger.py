"""The ledger: an append-only, hash-chained record of what happened to alerts, in the engine's state file.

Food-safety plans and inspectors ask for proof: that a person was told, who acknowledged, what was done,
and what the temperature was. Every such fact is one row of the ``ledger`` table, and every row carries
the hash of the row before it, so a row changed, deleted or inserted afterwards breaks the chain where it
happened (:func:`verify`). A temperature report names the last row it used (its ``head``), so
``vigil report verify`` can tell whether anything it relied on changed since.

Kinds of rows (``key`` is the alert's ``rule/series``, or a series for ``seal``):

    fired      an excursion began or an alert fired: since, at, value, peak, severity, message, unit
    cleared    a latched alert's condition cleared, not acknowledged yet: at, peak, since
    resolved   the alert is over: at, peak, since, ended, acknowledged_by
    told       a receiver was sent a message about it: receiver, kind (firing, escalation, repeat, cleared)
    acked      a person acknowledged it: by, comment, via (link, dashboard, mqtt), episode
    note       a corrective action: by, text, id
    seal       the digest of one series' stored readings over [start, end): count, sha256
    report     a report was made: id, start, end, units

The engine and the dispatcher append inside their own write transactions (``BEGIN IMMEDIATE``), which
SQLite serialises, so the chain stays one line even with two connections to the file. On PostgreSQL
(vigil.core.sqldb), where several engines and dispatchers share one ledger table and writers are not
serialised, an appender first takes the transaction-scoped advisory lock :data:`PG_LOCK` (:func:`lock`), in a
statement of its own before it reads the head (under READ COMMITTED each statement sees what was committed
when it began), and holds it until its commit: rows are numbered and chained in commit order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from vigil.core.sqldb import Connection, dialect

__all__ = ["GENESIS", "KINDS", "PG_LOCK", "Entry", "append", "create", "entries", "entry_hash", "head", "lock",
           "verify"]

GENESIS = "0" * 64
KINDS = ("fired", "cleared", "resolved", "told", "acked", "note", "seal", "report")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, "
    "key TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ledger_key ON ledger (key, seq)",
    "CREATE INDEX IF NOT EXISTS ledger_kind ON ledger (kind, at)",
)
_PG_SCHEMA = (_SCHEMA[0].replace("seq INTEGER", "seq BIGINT").replace(" REAL", " DOUBLE PRECISION"), *_SCHEMA[1:])

#: PostgreSQL's advisory lock key (a fixed 64-bit constant: "VIGILLDG" in ASCII) held by a transaction that
#: appends to the ledger, enqueues in the outbox or sets up the schema; held until its COMMIT or ROLLBACK
PG_LOCK = 0x564947494C4C4447


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: float
    kind: str
    key: str
    body: dict[str, Any]
    prev: str
    hash: str


def lock(conn: Connection) -> None:
    """On PostgreSQL, wait for :data:`PG_LOCK` and hold it until the transaction ends; nothing on SQLite (its
    ``BEGIN IMMEDIATE`` already serialises writers). Call it inside the transaction, before reading what it
    guards."""
    if dialect(conn) == "postgresql":
        conn.execute(f"SELECT pg_advisory_xact_lock({PG_LOCK})")


def create(conn: Connection) -> None:
    """Create the table (idempotent); the engine's and the dispatcher's state set-up both call it."""
    if dialect(conn) == "postgresql":
        lock(conn)  # two transactions creating the same table at once can fail on PostgreSQL
        for statement in _PG_SCHEMA:
            conn.execute(statement)
        return
    for statement in _SCHEMA:
        conn.execute(statement)


def canonical(body: Mapping[str, Any]) -> str:
    """The one text a body is stored and hashed as."""
    return json.dumps(dict(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(seq: int, at: float, kind: str, key: str, body: str, prev: str) -> str:
    text = f"{seq}\n{at:.6f}\n{kind}\n{key}\n{body}\n{prev}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def head(conn: Connection) -> tuple[int, str]:
    """The last row's sequence number and hash; (0, GENESIS) for an empty ledger."""
    row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def append(conn: Connection, kind: str, key: str, body: Mapping[str, Any], at: float) -> Entry:
    """Append one row; call it inside a write transaction (the chain's last row is read under its lock)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    text = canonical(body)
    if dialect(conn) == "postgresql":
        if not conn.in_transaction:
            raise ValueError("a ledger row is appended inside a transaction on PostgreSQL (the lock is the "
                             "transaction's)")
        lock(conn)
    seq, prev = head(conn)
    seq += 1
    digest = entry_hash(seq, at, kind, key, text, prev)
    conn.execute("INSERT INTO ledger (seq, at, kind, key, body, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (seq, at, kind, key, text, prev, digest))
    return Entry(seq, at, kind, key, json.loads(text), prev, digest)


def entries(conn: Connection, *, keys: Optional[Iterable[str]] = None,
            kinds: Optional[Iterable[str]] = None, upto: Optional[int] = None) -> list[Entry]:
    """Rows in order, optionally only of some keys and kinds, and only up to sequence ``upto``."""
    where: list[str] = []
    args: list[Any] = []
    if keys is not None:
        k = list(keys)
        where.append(f"key IN ({','.join('?' * len(k))})" if k else "1 = 0")
        args += k
    if kinds is not None:
        kk = list(kinds)
        where.append(f"kind IN ({','.join('?' * len(kk))})" if kk else "1 = 0")
        args += kk
    if upto is not None:
        where.append("seq <= ?")
        args.append(upto)
    sql = "SELECT seq, at, kind, key, body, prev, hash FROM ledger"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [Entry(int(r[0]), float(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), str(r[5]), str(r[6]))
            for r in conn.execute(sql + " ORDER BY seq", args)]


def verify(conn: Connection, upto: Optional[int] = None, upto_hash: Optional[str] = None) -> list[str]:
    """Walk the chain from its first row; each problem as a sentence (none: intact).

    A changed row no longer matches its hash; a deleted or inserted row breaks the link to the row after
    it; ``upto``/``upto_hash`` (a report's head) must still be there, unchanged.
    """
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    last_seq = 0
    for seq, at, kind, key, body, stored_prev, stored_hash in conn.execute(
            "SELECT seq, at, kind, key, body, prev, hash FROM ledger ORDER BY seq"):
        seq = int(seq)
        if seq != expected_seq:
            problems.append(f"ledger record{'s' if seq - expected_seq > 1 else ''} {expected_seq}"
                            f"{'' if seq - expected_seq == 1 else f'-{seq - 1}'} missing (deleted)")
        elif stored_prev != prev:
            problems.append(f"ledger record {seq} ({kind} {key}) does not follow record {seq - 1}: "
                            "a record before it was changed or replaced")
        if entry_hash(seq, float(at), str(kind), str(key), str(body), str(stored_prev)) != stored_hash:
            problems.append(f"ledger record {seq} ({kind} {key}) was changed after it was written")
        expected_seq, prev = seq + 1, str(stored_hash)
        last_seq = seq
        if upto is not None and seq == upto and upto_hash is not None and stored_hash != upto_hash:
            problems.append(f"ledger record {seq}, the last one the report used, is not the one it saw")
    if upto is not None and last_seq < upto:
        problems.append(f"ledger records {last_seq + 1}-{upto} missing: the report used up to record {upto}")
    return problems
