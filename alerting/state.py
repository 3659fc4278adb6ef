"""The engine's state database: every alert's state, when each series was last heard, and what the
conditions learned (``learned_state``: one small versioned JSON blob per alert, alerting/intake.py).

The notification outbox (``alerting.notify``) and the ledger (``alerting.ledger``: the hash-chained record of
fired, cleared, resolved, acknowledged and noted) live in the same file, so a state change, its notification
and its ledger rows are committed in one transaction. Columns added since a file was made are added to it
when it is opened (:data:`_ADDED_COLUMNS`).

The database is of two kinds (vigil.core.sqldb): an SQLite file (a path: one engine, WAL, checkpoints from
:meth:`StateDB.checkpoint`) or PostgreSQL (a ``postgresql://`` URL: several engines sharing one database, the
first step of failover; no PRAGMAs, no checkpoints). Same tables on both (DOUBLE PRECISION for REAL, BIGINT and
identity columns on PostgreSQL), same statements where the two agree (``INSERT ... ON CONFLICT``, ``CASE``);
writers serialise on SQLite's ``BEGIN IMMEDIATE`` or on PostgreSQL's advisory lock (:func:`alerting.ledger.lock`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TypeVar, Union
from urllib.parse import urlsplit

from alerting import ledger
from alerting.conditions import SeriesData
from alerting.transition import AlertState
from vigil.core import sqldb
from vigil.core.errors import VigilError

__all__ = ["AlertRecord", "StateDB", "StateError", "immediate_transaction"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    series TEXT NOT NULL,
    state TEXT NOT NULL,
    underlying TEXT NOT NULL,
    state_since REAL NOT NULL,
    pending_since REAL,
    firing_since REAL,
    clear_since REAL,
    value REAL,
    changes TEXT NOT NULL DEFAULT '[]',
    acked_by TEXT,
    ack_comment TEXT,
    last_transition TEXT,
    peak REAL,
    episode REAL,
    ended REAL,
    acked_at REAL
);
CREATE TABLE IF NOT EXISTS series_seen (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    sensor TEXT NOT NULL,
    metric TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS learned_state (
    key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    series TEXT NOT NULL,
    blob TEXT NOT NULL
);
"""

#: alert_state columns newer than the first state files: added (NULL) to an older file on open
_ADDED_COLUMNS = {"peak": "REAL", "episode": "REAL", "ended": "REAL", "acked_at": "REAL"}
_ALERT_COLUMNS = ("rule, series, state, underlying, state_since, pending_since, firing_since, clear_since, value, "
                  "changes, acked_by, ack_comment, last_transition, peak, episode, ended, acked_at")
_SAVE_ALERT = (f"INSERT INTO alert_state (key, {_ALERT_COLUMNS}) VALUES ({','.join('?' * 18)}) ON CONFLICT (key) "
               "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS.split(", ")))
#: a note's id in its ledger row's JSON body
_NOTE_ID = {"sqlite": "json_extract(body, '$.id')", "postgresql": "(body::jsonb ->> 'id')"}


def _pg(ddl: str) -> str:
    """A table's SQLite definition as PostgreSQL's (whose REAL is 4 bytes)."""
    return ddl.replace(" REAL", " DOUBLE PRECISION")


_Conn = TypeVar("_Conn", bound=sqldb.Connection)


@contextmanager
def immediate_transaction(conn: _Conn) -> Iterator[_Conn]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection (ROLLBACK on an exception, the exception raised
    as it was: a ROLLBACK that fails on a lost connection does not replace it); BEGIN on PostgreSQL."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        _abandon(conn)
        raise
    try:
        yield conn
    except BaseException:
        _abandon(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        _abandon(conn)
        raise


def _abandon(conn: sqldb.Connection) -> None:
    """Roll back what is open (a BEGIN or COMMIT that raised may leave it open too: SQLite busy or out of disk, its
    write lock held, every later BEGIN failing). On a lost PostgreSQL connection that fails as well, and the server
    has rolled back: the caller's exception is the one to say."""
    if conn.in_transaction:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")


class StateError(VigilError):
    """The state database cannot be opened or written; ``path`` names it (a URL's password redacted)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


@dataclass(slots=True)
class AlertRecord:
    """The state of one alert (one rule on one series).

    ``state`` is what people see (it stays FLAPPING while the alert flaps); ``underlying`` is what
    the condition says (ok, pending, firing), tracked quietly while flapping (and while a latched
    alert is CLEARED, waiting for its acknowledgement).

    ``peak``: the worst value of the condition's current excursion (alerting/excursion.py says which way is
    worse); ``episode``: the ``since`` of its last firing or flapping transition (the excursion people were
    told of, what an acknowledgement names; the quiet ones while it flaps do not move it); ``ended``: when
    that excursion's condition cleared (None while it holds);
    ``acked_at``: when it was acknowledged (engine clock).
    """

    rule: str
    series: str
    state: AlertState = AlertState.OK
    underlying: AlertState = AlertState.OK
    state_since: float = 0.0
    pending_since: Optional[float] = None
    firing_since: Optional[float] = None
    clear_since: Optional[float] = None
    value: Optional[float] = None
    changes: list[float] = field(default_factory=list)
    acked_by: Optional[str] = None
    ack_comment: Optional[str] = None
    last_transition: Optional[str] = None
    peak: Optional[float] = None
    episode: Optional[float] = None
    ended: Optional[float] = None
    acked_at: Optional[float] = None

    @property
    def key(self) -> str:
        return f"{self.rule}/{self.series}"

    @property
    def pristine(self) -> bool:
        """Nothing worth keeping: ok, and no recent changes to count for flapping."""
        return self.state == AlertState.OK and self.underlying == AlertState.OK and not self.changes


@functools.lru_cache(maxsize=4096)
def _labels_json(labels: tuple[tuple[str, str], ...]) -> str:
    """A series' labels as saved (few distinct sets: each written once, not once per commit)."""
    return json.dumps(dict(labels), sort_keys=True)


class StateDB:
    """One SQLite file in WAL mode, or a PostgreSQL database (``target`` a ``postgresql://`` URL); the engine
    writes it from one thread."""

    def __init__(self, target: Union[str, Path]) -> None:
        self.path = str(target)
        self.conn: sqldb.Connection
        if sqldb.is_postgres(self.path):
            self._open_postgres()
            return
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, a process crash loses none.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (which fsync) run from checkpoint() in a thread, never inside a commit
            # on the event loop: a checkpoint there stalled every alert for hundreds of ms.
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self.conn.executescript(_SCHEMA)
            with self.transaction():
                columns = {str(r[1]) for r in self.conn.execute("PRAGMA table_info(alert_state)")}
                for name, kind in _ADDED_COLUMNS.items():
                    if name not in columns:
                        self.conn.execute(f"ALTER TABLE alert_state ADD COLUMN {name} {kind}")
                ledger.create(self.conn)
        except sqlite3.Error as exc:
            raise StateError(self.path, f"cannot open the alert state file: {exc}") from exc

    def _open_postgres(self) -> None:
        shown = sqldb.redact(self.path)
        try:
            import psycopg
        except ImportError as exc:
            raise StateError(shown, "a PostgreSQL state database needs psycopg (the server extra)") from exc
        conn = None
        try:
            self.conn = conn = sqldb.connect(self.path, application_name="vigil-alerting")
            with self.transaction():
                ledger.lock(self.conn)  # engines starting together: one creates the tables, the others wait
                self.conn.executescript(_pg(_SCHEMA))
                columns = {str(r[0]) for r in self.conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'alert_state'")}
                for name, kind in _ADDED_COLUMNS.items():
                    if name not in columns:
                        self.conn.execute(f"ALTER TABLE alert_state ADD COLUMN IF NOT EXISTS {_pg(f'{name} {kind}')}")
                ledger.create(self.conn)
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            password = urlsplit(self.path).password
            message = str(exc).strip()
            if password:
                message = message.replace(password, "***")
            raise StateError(shown, f"cannot open the alert state database: {message}") from None

    def transaction(self) -> AbstractContextManager[sqldb.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on an exception); BEGIN on PostgreSQL."""
        return immediate_transaction(self.conn)

    def load_alerts(self) -> list[AlertRecord]:
        rows = self.conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alert_state").fetchall()
        out = []
        for r in rows:
            try:
                out.append(AlertRecord(r[0], r[1], AlertState(r[2]), AlertState(r[3]), r[4], r[5], r[6], r[7],
                                       r[8], [float(x) for x in json.loads(r[9])], r[10], r[11], r[12], r[13], r[14],
                                       r[15], r[16]))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring an unreadable alert state row %s/%s: %s", r[0], r[1], exc)
        return out

    def save_alerts(self, records: Iterable[AlertRecord]) -> None:
        """Upsert (or delete, when pristine) inside the caller's transaction."""
        for rec in records:
            if rec.pristine:
                self.conn.execute("DELETE FROM alert_state WHERE key = ?", (rec.key,))
                continue
            self.conn.execute(
                _SAVE_ALERT,
                (rec.key, rec.rule, rec.series, rec.state.value, rec.underlying.value, rec.state_since,
                 rec.pending_since, rec.firing_since, rec.clear_since, rec.value, json.dumps(rec.changes),
                 rec.acked_by, rec.ack_comment, rec.last_transition, rec.peak, rec.episode, rec.ended, rec.acked_at))

    # -- the ledger's notes (alerting/ledger.py appends; these read) --------------------------------

    def has_fired(self, key: str) -> bool:
        """Whether alert ``key`` ever fired (a ``fired`` row in the ledger)."""
        return self.conn.execute("SELECT 1 FROM ledger WHERE key = ? AND kind = 'fired' LIMIT 1",
                                 (key,)).fetchone() is not None

    def has_note(self, key: str, note_id: str) -> bool:
        """Whether a note with this id was recorded for alert ``key`` (a redelivered note)."""
        return self.conn.execute(
            f"SELECT 1 FROM ledger WHERE key = ? AND kind = 'note' AND {_NOTE_ID[sqldb.dialect(self.conn)]} = ? "
            "LIMIT 1",
            (key, note_id)).fetchone() is not None

    def notes(self, key: str, since: float, limit: int = 20) -> list[dict[str, object]]:
        """The last ``limit`` notes of alert ``key`` written at or after ``since``, oldest first: {by, text, at}."""
        rows = self.conn.execute(
            "SELECT body FROM ledger WHERE key = ? AND kind = 'note' AND at >= ? ORDER BY seq DESC LIMIT ?",
            (key, since, limit)).fetchall()
        out: list[dict[str, object]] = []
        for (body,) in reversed(rows):
            d = json.loads(body)
            out.append({"by": d.get("by"), "text": d.get("text"), "at": d.get("at")})
        return out

    def load_series(self) -> list[tuple[str, str, str, str, dict[str, str], float]]:
        rows = self.conn.execute("SELECT id, device, sensor, metric, labels, last_seen FROM series_seen")
        return [(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def save_series(self, series: Iterable[SeriesData]) -> None:
        """Upsert when series were last heard (those ever heard), inside the caller's transaction."""
        self.conn.executemany(
            "INSERT INTO series_seen (id, device, sensor, metric, labels, last_seen) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET last_seen = CASE WHEN excluded.last_seen > series_seen.last_seen "
            "THEN excluded.last_seen ELSE series_seen.last_seen END, labels = excluded.labels",
            [(d.id, d.device, d.sensor, d.metric, _labels_json(d.labels), d.last_seen)
             for d in series if d.last_seen is not None])

    def load_learned(self) -> list[tuple[str, str]]:
        """(alert key, blob) of every saved learned state."""
        return [(str(r[0]), str(r[1])) for r in self.conn.execute("SELECT key, blob FROM learned_state")]

    def save_learned(self, rows: Iterable[tuple[str, str, str, Optional[str]]]) -> None:
        """Upsert (key, rule, series, blob), or delete when the blob is None, inside the caller's transaction."""
        rows = list(rows)
        if not rows:  # the usual case: one batch's commit, no slice due
            return
        self.conn.executemany("DELETE FROM learned_state WHERE key = ?", [(r[0],) for r in rows if r[3] is None])
        self.conn.executemany("INSERT INTO learned_state (key, rule, series, blob) VALUES (?,?,?,?) ON CONFLICT (key) "
                              "DO UPDATE SET rule = excluded.rule, series = excluded.series, blob = excluded.blob",
                              [r for r in rows if r[3] is not None])

    def keep_learned(self, rules: Iterable[str]) -> None:
        """Forget the learned state of rules not in ``rules`` (removed or disabled)."""
        names = sorted(set(rules))
        marks = ",".join("?" * len(names))
        with self.transaction():  # NOT IN () is SQLite's, not PostgreSQL's
            self.conn.execute(f"DELETE FROM learned_state WHERE rule NOT IN ({marks})" if names else
                              "DELETE FROM learned_state", names)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE: writers go on); call it from a thread. Nothing on
        PostgreSQL."""
        if self.path == ":memory:" or sqldb.dialect(self.conn) == "postgresql":
            return
        conn = sqlite3.connect(self.path, timeout=5)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def close(self) -> None:
        if sqldb.dialect(self.conn) == "postgresql":
            self.conn.close()
            return
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # closing must not fail; the WAL is replayed on the next open
        self.conn.close()
