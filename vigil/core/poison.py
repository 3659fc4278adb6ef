"""Poison messages: a message that stopped a consumer is refused when it comes back, not handled again.

The bridge and the rule engine acknowledge a message only after what it caused is durable, so a
message whose handling kills the process (memory exhausted, a crash in a C library, a bug that
takes the consumer down) comes back after the restart, and would kill it again: a crash loop, with
every other message waiting behind it. Queue systems cap the deliveries of such a message; MQTT
has no such count, so each consumer keeps one itself, in a SQLite file of its own (the bridge's
spool file; a file beside the engine's state file):

- before a batch is handled, the fingerprints of its messages (topic and payload, hashed) are
  marked in hand; the mark is removed once the batch is acknowledged (or given back to the
  broker on a lost connection or a clean stop);
- a mark found at start (or after the consumer failed) means the process stopped while those
  messages were in hand: they become *suspects*, and when they come back each is handled alone,
  with nothing else in flight, marked before and cleared once acknowledged;
- a suspect that stops the process again while handled alone is *poison*: on its next delivery it
  is refused and not handled (the bridge dead-letters it with reason ``poison``; the engine, which
  has no dead-letter topic, logs it, counts it on its health and acknowledges it).

The marks of the batches in hand are not SQLite rows but a file mapped into memory (:class:`Marks`,
``<file>.hand`` beside the SQLite file): a write to a shared mapping is in the operating system's cache at
once, so it outlives the process as a row without fsync does, without a write transaction per batch (two
per batch were 18 µs of CPU, about 7 µs of the bridge's per reading at 1,000 readings/s; at 1,000 readings/s
the engine takes batches of one or two: those commits were a tenth of its CPU). The suspects are SQLite rows
(``synchronous=NORMAL``). After a power cut either may be lost, which costs only the detection of a poison
message that happened to be in hand at that moment.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import sqlite3
import struct
import time
from pathlib import Path
from typing import Optional

__all__ = ["DIGEST", "Marks", "PoisonGuard", "fingerprint", "marked", "marks_path"]

log = logging.getLogger(__name__)

# Suspects that never come back (their session expired, or another consumer of a shared group took them).
_SUSPECT_MAX_AGE = 7 * 86400.0
DIGEST = 16


def fingerprint(topic: str, payload: bytes) -> bytes:
    """What identifies a message across deliveries: its topic and payload, hashed."""
    h = hashlib.blake2b(payload, digest_size=DIGEST)
    h.update(topic.encode("utf-8", "surrogatepass"))
    return h.digest()


def marks_path(path: str | Path) -> str | Path:
    """Where the marks of the batches in hand are, beside the guard's SQLite file ``path``."""
    return path if str(path) == ":memory:" else Path(path).with_suffix(".hand")


def marked(path: str | Path) -> list[bytes]:
    """The fingerprints another process (a guard's SQLite file at ``path``) has in hand now."""
    try:
        data = Path(marks_path(path)).read_bytes()
    except FileNotFoundError:
        return []
    n = struct.unpack_from("<I", data, 0)[0] if len(data) >= 4 else 0
    return [data[i:i + DIGEST] for i in range(4, min(len(data), 4 + n * DIGEST), DIGEST)]


class Marks:
    """The fingerprints of the batches in hand, in a file mapped into memory (an anonymous mapping for
    ``:memory:``): a count (4 bytes) then the fingerprints of every batch in hand, in the order taken.

    A batch taken is written after the others, the count last; a batch released is removed by moving the
    ones after it down, whole fingerprints at a time, the count last. So a process stopped at any point
    leaves marked every message in hand (and at most some of a batch being released, which then are
    suspects that do not come back: harmless)."""

    _COUNT = struct.Struct("<I")

    def __init__(self, path: str | Path) -> None:
        self.path = None if str(path) == ":memory:" else Path(path)
        self._fd = -1 if self.path is None else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._map = self._mapped(max(mmap.PAGESIZE, os.fstat(self._fd).st_size if self._fd >= 0 else 0))
        self._batches: dict[int, bytes] = {}  # mark -> fingerprints, in the order taken
        self._next = 0
        self._size = 0  # bytes of fingerprints marked

    def _mapped(self, size: int) -> mmap.mmap:
        if self._fd < 0:
            return mmap.mmap(-1, size)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def held(self) -> bytes:
        """The fingerprints marked (b"" for none), also those a process stopped before left."""
        (n,) = self._COUNT.unpack_from(self._map, 0)
        size = 4 + n * DIGEST
        return bytes(self._map[4:size]) if size <= len(self._map) else b""

    def hold(self, fps: bytes) -> int:
        """Mark a batch's fingerprints (joined) in hand; returns the mark to :meth:`release`."""
        end = 4 + self._size + len(fps)
        if end > len(self._map):
            self._map.close()
            self._map = self._mapped(-(-end // mmap.PAGESIZE) * mmap.PAGESIZE)
        m = self._map
        m[4 + self._size:end] = fps
        self._size += len(fps)
        self._COUNT.pack_into(m, 0, self._size // DIGEST)
        self._next += 1
        self._batches[self._next] = fps
        return self._next

    def release(self, mark: int) -> None:
        if self._batches.pop(mark, None) is None:
            return
        rest = b"".join(self._batches.values())
        self._map[4:4 + len(rest)] = rest
        self._size = len(rest)
        self._COUNT.pack_into(self._map, 0, self._size // DIGEST)

    def release_all(self) -> None:
        self._COUNT.pack_into(self._map, 0, 0)
        self._batches.clear()
        self._size = 0

    def close(self) -> None:
        """Idempotent: a second close must not close a descriptor number the process has given to another file
        since (a broker's socket)."""
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PoisonGuard:
    """The suspects, in a SQLite file (``:memory:`` for none), and the marks of the batches in hand
    (:class:`Marks`, beside it). Used from one thread only.

    ``part`` and ``fate`` word the warning at start: "the <part> stopped ...", "... <fate>"."""

    def __init__(self, path: str | Path, part: str = "bridge", fate: str = "dead-lettered as poison") -> None:
        self.path = Path(path)
        self.part, self.fate = part, fate
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS in_hand (id INTEGER PRIMARY KEY, fps BLOB NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS suspects (fp BLOB PRIMARY KEY, alone INTEGER NOT NULL, "
                           "since REAL NOT NULL)")
        self._conn.execute("DELETE FROM suspects WHERE since < ?", (time.time() - _SUSPECT_MAX_AGE,))
        self.suspects: dict[bytes, bool] = {}  # fingerprint -> was handled alone when the process stopped
        self.marks = Marks(marks_path(path))
        self.recover()

    def recover(self) -> int:
        """After a stop with messages in hand: make them suspects; returns how many there are."""
        now = time.time()
        self._conn.execute("BEGIN IMMEDIATE")
        # in_hand: the rows of the batches in hand, as a bridge before the marks kept them; carried once
        for blob in [bytes(fps) for (fps,) in self._conn.execute("SELECT fps FROM in_hand")] + [self.marks.held()]:
            self._conn.executemany("INSERT OR IGNORE INTO suspects VALUES (?, 0, ?)",
                                   [(blob[i:i + DIGEST], now) for i in range(0, len(blob), DIGEST)])
        self._conn.execute("DELETE FROM in_hand")
        self._conn.execute("COMMIT")
        self.marks.release_all()
        self.suspects = {bytes(fp): bool(alone) for fp, alone in self._conn.execute("SELECT fp, alone FROM suspects")}
        if self.suspects:
            poison = sum(self.suspects.values())
            log.warning("the %s stopped with %d messages in hand; when they come back each is handled alone%s",
                        self.part, len(self.suspects), f" ({poison} of them a second time: {self.fate})" if poison
                        else "")
        return len(self.suspects)

    def hold(self, fps: list[bytes]) -> int:
        """Mark a batch's messages in hand; returns the mark to :meth:`release`."""
        return self.marks.hold(b"".join(fps))

    def release(self, mark: int) -> None:
        """The batch is acknowledged (or given back to the broker): it was not poison."""
        self.marks.release(mark)

    def release_all(self) -> None:
        """Everything in hand goes back to the broker (lost connection, clean stop)."""
        self.marks.release_all()

    def hold_alone(self, fp: bytes) -> None:
        """A suspect is about to be handled with nothing else in hand."""
        self._conn.execute("UPDATE suspects SET alone = 1 WHERE fp = ?", (fp,))
        self.suspects[fp] = True

    def back_to_suspect(self, fp: bytes) -> None:
        """A suspect handled alone went back to the broker without stopping anything."""
        self._conn.execute("UPDATE suspects SET alone = 0 WHERE fp = ?", (fp,))
        if fp in self.suspects:
            self.suspects[fp] = False

    def clear(self, fp: bytes) -> None:
        """A suspect was handled (or dead-lettered) and acknowledged."""
        self._conn.execute("DELETE FROM suspects WHERE fp = ?", (fp,))
        self.suspects.pop(fp, None)

    def verdict(self, fp: bytes) -> Optional[bool]:
        """None: not a suspect; False: a suspect, to handle alone; True: poison."""
        return self.suspects.get(fp)

    def close(self) -> None:
        self._conn.close()
        self.marks.close()
