"""The store-and-forward queue: every reading goes here first, on disk (SQLite in WAL mode).

A reading leaves only when the broker acknowledged it (``remove``). The per-sensor ``seq``
counter lives in the same file and is committed in the same transaction as the reading, so
a restart neither reuses nor skips a number. Durability is a setting, because a Pi writes to
an SD card:

- ``always``: commit and fsync every reading (survives power loss; most writes);
- ``batch``: commit every ``batch_interval`` (group commit; a crash or power cut loses at most
  that interval of readings, which were never published: the link only sends committed rows);
- ``off``: like batch, but SQLite never fsyncs (the OS writes when it likes).

The queue is bounded by count and age; when full it drops the oldest and counts the drops.

Where it lives (``default_directory``): the systemd unit's ``StateDirectory=`` (``$STATE_DIRECTORY``,
``/var/lib/vigil-edge``), else ``$XDG_STATE_HOME/vigil-edge``, else ``~/.local/state/vigil-edge``.
``:memory:`` keeps it in memory, for demos and tests only: what was not sent is lost on stop. One
agent at a time uses a directory (a lock file), so two never send each other's readings.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from vigil.core.clock import Clock, SystemClock

from .errors import QueueError

__all__ = ["MEMORY", "QueuedReading", "ReadingQueue", "default_directory"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seq (sensor TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SYNCHRONOUS = {"always": "FULL", "batch": "NORMAL", "off": "OFF"}
MEMORY = ":memory:"


def default_directory(env: Optional[Mapping[str, str]] = None) -> str:
    """Where the queue lives unless configured: systemd's state directory, else the XDG one."""
    env = os.environ if env is None else env
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative path is invalid and must be ignored.
    if os.path.isabs(xdg):
        return os.path.join(xdg, "vigil-edge")
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "state", "vigil-edge")


@dataclass(frozen=True)
class QueuedReading:
    """One row of the queue, ready to publish."""

    id: int
    sensor: str
    seq: int
    ts: float
    topic: str
    payload: bytes


class ReadingQueue:
    """A bounded, ordered, durable queue of readings; thread-safe."""

    FILE_NAME = "queue.db"
    LOCK_NAME = "queue.lock"

    def __init__(self, directory: str, *, max_readings: int = 100_000, max_age: float = 7 * 86400.0,
                 sync: str = "batch", batch_interval: float = 2.0, clock: Optional[Clock] = None,
                 owner: str = "") -> None:
        """``directory`` holds queue.db, or is MEMORY; ``owner`` names this agent to a second one."""
        self.clock = clock or SystemClock()
        self.max_readings = max_readings
        self.max_age = max_age
        self.sync = sync
        self.batch_interval = batch_interval
        self.in_memory = directory == MEMORY
        self.path = MEMORY if self.in_memory else os.path.join(directory, self.FILE_NAME)
        self._lock_fd: Optional[int] = None
        try:
            if not self.in_memory:
                os.makedirs(directory, exist_ok=True)
                self._lock_fd = _take_lock(os.path.join(directory, self.LOCK_NAME), owner, self.path)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # Small pages: a commit rewrites whole pages, and rows here are small; 1 KiB pages write
            # fewer bytes per reading than the default 4 KiB (docs/edge.md, Durability and the SD card).
            self._db.execute("PRAGMA page_size=1024")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[sync]}")
            # A small page cache: the queue is read front to back, and a Pi Zero has 512 MB.
            self._db.execute("PRAGMA cache_size=-512")
            self._db.executescript(_SCHEMA)
            self._seq = dict(self._db.execute("SELECT sensor, last FROM seq").fetchall())
            row = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM readings").fetchone()
            self._depth, self._committed_id = int(row[0]), int(row[1])
            found = self._db.execute("SELECT value FROM meta WHERE key='dropped'").fetchone()
            self._dropped = int(found[0]) if found else 0
        except (OSError, sqlite3.Error) as exc:
            self._release()
            raise QueueError(self.path, f"cannot open: {exc}") from exc
        self._lock = threading.Lock()
        self._in_tx = False
        self._last_id = self._committed_id
        self._last_commit = self.clock.monotonic()
        self._closed = False

    # -- the sampler's side -------------------------------------------------------------

    def put(self, sensor: str, topic: str, ts: float, build: Callable[[int], bytes]) -> int:
        """Queue one reading; ``build(seq)`` makes its payload. Returns the seq it got."""
        with self._lock:
            try:
                self._begin()
                seq: int = self._seq.get(sensor, -1) + 1
                payload = build(seq)
                cur = self._db.execute("INSERT INTO readings (sensor, seq, ts, topic, payload) VALUES (?,?,?,?,?)",
                                       (sensor, seq, ts, topic, payload))
                self._db.execute("INSERT INTO seq (sensor, last) VALUES (?, ?) "
                                 "ON CONFLICT(sensor) DO UPDATE SET last=excluded.last", (sensor, seq))
                self._seq[sensor] = seq
                self._last_id = int(cur.lastrowid or self._last_id)
                self._depth += 1
                if self._depth > self.max_readings:
                    self._drop_oldest(self._depth - self.max_readings)
                if self.sync == "always":
                    self._commit()
                else:
                    self._maybe_commit()
            except sqlite3.Error as exc:
                raise QueueError(self.path, f"cannot store a reading: {exc}") from exc
            return seq

    def tick(self) -> None:
        """Group-commit when the batch interval has passed, and drop readings older than max_age."""
        with self._lock:
            try:
                cutoff = self.clock.now() - self.max_age
                # Rows are in time order nearly always; look at the oldest before scanning.
                oldest = self._db.execute("SELECT ts FROM readings ORDER BY id LIMIT 1").fetchone()
                if oldest is not None and oldest[0] < cutoff:
                    self._begin()
                    old = self._db.execute("DELETE FROM readings WHERE ts < ?", (cutoff,)).rowcount
                    self._count_drops(int(old), f"older than max_age ({self.max_age:g}s)")
                self._maybe_commit()
            except sqlite3.Error as exc:
                raise QueueError(self.path, f"cannot prune: {exc}") from exc

    def flush(self) -> None:
        """Commit now (on shutdown)."""
        with self._lock:
            if self._in_tx:
                self._commit()

    # -- the link's side ----------------------------------------------------------------

    def committed_id(self) -> int:
        """The highest id the link may send: rows not yet committed could vanish in a crash."""
        return self._committed_id

    def fetch(self, after_id: int, up_to_id: int, limit: int) -> list[QueuedReading]:
        """Up to ``limit`` committed readings with ``after_id < id <= up_to_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, sensor, seq, ts, topic, payload FROM readings WHERE id > ? AND id <= ? "
                "ORDER BY id LIMIT ?", (after_id, min(up_to_id, self._committed_id), limit)).fetchall()
        return [QueuedReading(int(r[0]), r[1], int(r[2]), float(r[3]), r[4], bytes(r[5])) for r in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget readings the broker acknowledged (committed with the next reading or group)."""
        if not ids:
            return
        with self._lock:
            try:
                self._begin()
                # One statement for any number of ids: an ``IN (?,?,...)`` per batch size would keep
                # a prepared statement per size in sqlite3's cache, after batches of 1 to 100
                # acknowledgements as after an outage (docs/edge.md, Footprint).
                removed = self._db.executemany("DELETE FROM readings WHERE id = ?", [(i,) for i in ids]).rowcount
                # Not committed here, even with sync: always: losing a removal in a crash only
                # sends that reading again (the bridge drops it by its seq); the next reading's
                # commit, or the group commit, carries it, and saves a write and an fsync.
                self._depth -= removed
            except sqlite3.Error as exc:
                raise QueueError(self.path, f"cannot remove sent readings: {exc}") from exc

    # -- figures for the status message -------------------------------------------------

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._dropped

    def oldest_ts(self) -> Optional[float]:
        with self._lock:
            row = self._db.execute("SELECT MIN(ts) FROM readings").fetchone()
        return None if row[0] is None else float(row[0])

    def last_seq(self, sensor: str) -> Optional[int]:
        return self._seq.get(sensor)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._in_tx:
                    self._commit()
                self._db.close()
            except sqlite3.Error as exc:
                log.error("reading queue %s: cannot close cleanly: %s", self.path, exc)
            self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    # -- internals ----------------------------------------------------------------------

    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def _commit(self) -> None:
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False
        self._committed_id = self._last_id
        self._last_commit = self.clock.monotonic()

    def _maybe_commit(self) -> None:
        if self._in_tx and self.clock.monotonic() - self._last_commit >= self.batch_interval:
            self._commit()

    def _drop_oldest(self, count: int) -> None:
        self._db.execute("DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY id LIMIT ?)",
                         (count,))
        self._count_drops(count, f"full ({self.max_readings} readings)")

    def _count_drops(self, count: int, why: str) -> None:
        self._depth -= count
        self._dropped += count
        self._db.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (self._dropped,))
        # One line per hundred drops, not one per reading, so a long outage does not flood the log.
        if self._dropped - count < (self._dropped // 100) * 100 or self._dropped == count:
            log.warning("reading queue %s: %s: dropped the oldest %d, %d dropped so far",
                        self.path, why, count, self._dropped)


def _take_lock(path: str, owner: str, queue: str) -> int:
    """Lock the queue's directory for this agent; a second agent gets an error naming the first."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise QueueError(queue, f"in use by another vigil edge ({holder}); give this one a queue of its own "
                                "with --queue DIR (buffer.path)") from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{owner or 'vigil edge'}, pid {os.getpid()}\n".encode())
    return fd
