"""Poison messages: a message that stopped a consumer is refused when it comes back, not handled again.

The bridge and the rule engine acknowledge a message only after what it caused is durable, so a
message whose handling kills the process (memory exhausted, a crash in a C library, a bug that
takes the consumer down) comes back after the restart, and would kill it again: a crash loop, with
every other message waiting behind it. Queue systems cap the deliveries of such a message; MQTT
has no such count, so each consumer keeps one itself, in a SQLite file of its own (the bridge's
spool file; a file beside the engine's state file):

- before a batch is handled, the fingerprints of its messages (topic and payload, hashed) are
  recorded as one row; the row is deleted once the batch is acknowledged (or given back to the
  broker on a lost connection or a clean stop);
- a row found at start (or after the consumer failed) means the process stopped while those
  messages were in hand: they become *suspects*, and when they come back each is handled alone,
  with nothing else in flight, marked before and cleared once acknowledged;
- a suspect that stops the process again while handled alone is *poison*: on its next delivery it
  is refused and not handled (the bridge dead-letters it with reason ``poison``; the engine, which
  has no dead-letter topic, logs it, counts it on its health and acknowledges it).

The rows are written without fsync (``synchronous=NORMAL``): they must outlive the process, which
the operating system's cache does; after a power cut they may be lost, which costs only the
detection of a poison message that happened to be in hand at that moment.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Optional

__all__ = ["DIGEST", "PoisonGuard", "fingerprint"]

log = logging.getLogger(__name__)

# Suspects that never come back (their session expired, or another consumer of a shared group took them).
_SUSPECT_MAX_AGE = 7 * 86400.0
DIGEST = 16


def fingerprint(topic: str, payload: bytes) -> bytes:
    """What identifies a message across deliveries: its topic and payload, hashed."""
    h = hashlib.blake2b(payload, digest_size=DIGEST)
    h.update(topic.encode("utf-8", "surrogatepass"))
    return h.digest()


class PoisonGuard:
    """The marks of messages in hand, in a SQLite file (``:memory:`` for none). Used from one thread only.

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
        self.recover()

    def recover(self) -> int:
        """After a stop with messages in hand: make them suspects; returns how many there are."""
        now = time.time()
        self._conn.execute("BEGIN IMMEDIATE")
        for (fps,) in self._conn.execute("SELECT fps FROM in_hand").fetchall():
            blob = bytes(fps)
            self._conn.executemany("INSERT OR IGNORE INTO suspects VALUES (?, 0, ?)",
                                   [(blob[i:i + DIGEST], now) for i in range(0, len(blob), DIGEST)])
        self._conn.execute("DELETE FROM in_hand")
        self._conn.execute("COMMIT")
        self.suspects = {bytes(fp): bool(alone) for fp, alone in self._conn.execute("SELECT fp, alone FROM suspects")}
        if self.suspects:
            poison = sum(self.suspects.values())
            log.warning("the %s stopped with %d messages in hand; when they come back each is handled alone%s",
                        self.part, len(self.suspects), f" ({poison} of them a second time: {self.fate})" if poison
                        else "")
        return len(self.suspects)

    def hold(self, fps: list[bytes]) -> int:
        """Record a batch's messages as in hand; returns the mark to :meth:`release`."""
        cur = self._conn.execute("INSERT INTO in_hand (fps) VALUES (?)", (b"".join(fps),))
        return int(cur.lastrowid or 0)

    def release(self, mark: int) -> None:
        """The batch is acknowledged (or given back to the broker): it was not poison."""
        self._conn.execute("DELETE FROM in_hand WHERE id = ?", (mark,))

    def release_all(self) -> None:
        """Everything in hand goes back to the broker (lost connection, clean stop)."""
        self._conn.execute("DELETE FROM in_hand")

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
