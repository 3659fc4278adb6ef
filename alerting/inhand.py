"""The rule engine's poison guard: a message it was handling when it died is refused when it comes back.

The engine handles what the broker delivered in drained batches and acknowledges a batch once what
it caused is committed (alerting/mqttloop.py). :class:`InHand` wraps that loop with the marks of
vigil/core/poison.py, kept in a SQLite file beside the state file (``alerts.db`` -> ``alerts.poison.db``):

- a batch is marked in hand (one row, its messages' fingerprints) before it is handled, and the
  mark is deleted once the batch is acknowledged;
- after a death with a batch in hand, its messages are *suspects*: when they come back, the batch
  is cut around them, in order, and each suspect is handled alone (marked, handled, acknowledged,
  cleared) with nothing else in hand;
- a suspect in hand alone when the engine died again is *poison*: it is refused (logged once with
  its topic, counted on the engine's health under ``refused: {"poison": n}``) and acknowledged,
  not handled. The engine has no dead-letter topic.

So a message that kills the engine costs two restarts, never a crash loop. The cost when nothing is
suspect: one hash per message and two writes to memory per batch. The mark of the batch in hand is not a
SQLite row but a file mapped into memory (:class:`Marks`, ``alerts.poison.db`` -> ``alerts.poison.hand``):
a write to a shared mapping is in the operating system's cache at once, so it outlives the process as a
SQLite row without fsync does (a power cut may lose either), without two SQLite commits per batch (at
1,000 readings/s the engine takes batches of one or two: those commits were a tenth of its CPU). At start,
and after a failure, a mark left there becomes a row of the guard's ``in_hand`` table, then suspects.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vigil.core.poison import DIGEST, PoisonGuard, fingerprint

__all__ = ["POISON_DETAIL", "InHand", "Marks", "in_hand_path", "marked", "marks_path"]

M = TypeVar("M")

POISON_DETAIL = ("the rule engine stopped twice while handling this message, the second time with it alone in "
                 "hand; it is acknowledged and not handled again, so that the other messages go on")


def in_hand_path(state_path: str | Path) -> Path:
    """Where the engine keeps its marks: beside its state file."""
    p = Path(state_path)
    return p.with_name(f"{p.stem}.poison.db")


class Marks:
    """The fingerprints of the batch in hand, in a file mapped into memory (an anonymous mapping for
    ``:memory:``): a count (4 bytes) then the fingerprints. A batch is written fingerprints first, count
    last, and released by a count of 0, so a process stopped at any point leaves either the whole batch or
    nothing marked."""

    _COUNT = struct.Struct("<I")

    def __init__(self, path: str | Path) -> None:
        self.path = None if str(path) == ":memory:" else Path(path)
        self._fd = -1 if self.path is None else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._map = self._mapped(max(mmap.PAGESIZE, os.fstat(self._fd).st_size if self._fd >= 0 else 0))

    def _mapped(self, size: int) -> mmap.mmap:
        if self._fd < 0:
            return mmap.mmap(-1, size)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def held(self) -> bytes:
        """The fingerprints marked (b"" for none)."""
        (n,) = self._COUNT.unpack_from(self._map, 0)
        size = 4 + n * DIGEST
        return bytes(self._map[4:size]) if size <= len(self._map) else b""

    def hold(self, fps: bytes) -> None:
        m = self._map
        size = 4 + len(fps)
        if size > len(m):
            m.close()
            m = self._map = self._mapped(-(-size // mmap.PAGESIZE) * mmap.PAGESIZE)
        m[4:size] = fps
        self._COUNT.pack_into(m, 0, len(fps) // DIGEST)

    def release(self) -> None:
        self._COUNT.pack_into(self._map, 0, 0)

    def close(self) -> None:
        """Idempotent: a second close must not close a descriptor number the process has given to another file
        since (a broker's socket)."""
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def marks_path(path: str | Path) -> str | Path:
    """Where the mark of the batch in hand is, beside the guard's file ``path``."""
    return path if str(path) == ":memory:" else Path(path).with_suffix(".hand")


def marked(path: str | Path) -> list[bytes]:
    """The fingerprints another process (an engine with its guard's file at ``path``) has in hand now."""
    try:
        data = Path(marks_path(path)).read_bytes()
    except FileNotFoundError:
        return []
    n = struct.unpack_from("<I", data, 0)[0] if len(data) >= 4 else 0
    return [data[i:i + DIGEST] for i in range(4, min(len(data), 4 + n * DIGEST), DIGEST)]


def topic_payload(message: Any) -> tuple[str, bytes]:
    """A message's topic and payload (alerting/mqttread.py's ``Incoming``); one the reader refused has
    nothing to handle (topic "")."""
    return ("", b"") if message.problem else (message.topic, message.payload)


class InHand:
    """Marks around the engine's batches; see the module's text. Used from the event loop only."""

    def __init__(self, path: str | Path, refuse: Callable[[str, str, str], None],
                 key: Callable[[Any], tuple[str, bytes]] = topic_payload,
                 innocent: tuple[type[Exception], ...] = ()) -> None:
        self.marks = Marks(marks_path(path))
        self.guard = PoisonGuard(path, part="rule engine", fate="refused as poison")
        self.refuse = refuse
        self.key = key
        self.innocent = innocent  # what stops the engine through no fault of the messages in hand
        if self.marks.held():  # stopped with a batch in hand: its messages are suspects
            self._carry()
            self.guard.recover()

    def _carry(self) -> None:
        """The batch marked goes to the guard's ``in_hand`` table, whose rows :meth:`PoisonGuard.recover`
        makes suspects."""
        held = self.marks.held()
        if held:
            self.guard.hold([held])
            self.marks.release()

    @property
    def suspects(self) -> int:
        return len(self.guard.suspects)

    def consume(self, batch: list[M], handle: Callable[[str, bytes], None], done: Callable[[list[M]], None]) -> None:
        """Handle ``batch`` with ``handle(topic, payload)`` and acknowledge it with ``done(messages)``
        (which commits, then acknowledges), marked in hand in between; suspects alone, poison refused.

        If ``handle`` or ``done`` raises, what was in hand becomes suspect, as after a death; unless the error is
        one of ``innocent`` (a shared state's partition lost, alerting/failover.py): then what was in hand goes back
        to the broker unsuspected, and a suspect handled alone is a suspect again, not poison."""
        guard = self.guard
        items = [(m, *self.key(m)) for m in batch]
        fps = [fingerprint(topic, payload) for _, topic, payload in items]
        try:
            if not guard.suspects:
                self._run(items, fps, handle, done)
                return
            start = 0
            for i, fp in enumerate(fps):
                verdict = guard.verdict(fp)
                if verdict is None:
                    continue
                self._run(items[start:i], fps[start:i], handle, done)
                start = i + 1
                message, topic, payload = items[i]
                if verdict:
                    self.refuse(topic, "poison", POISON_DETAIL)
                else:
                    guard.hold_alone(fp)
                    handle(topic, payload)
                done([message])
                guard.clear(fp)
            self._run(items[start:], fps[start:], handle, done)
        except self.innocent:
            self.marks.release()
            guard.release_all()
            for fp, alone in list(guard.suspects.items()):
                if alone:
                    guard.back_to_suspect(fp)
            raise
        except Exception:
            self._carry()
            guard.recover()
            raise

    def _run(self, items: list[tuple[M, str, bytes]], fps: list[bytes], handle: Callable[[str, bytes], None],
             done: Callable[[list[M]], None]) -> None:
        if not items:
            return
        self.marks.hold(b"".join(fps))
        for _, topic, payload in items:
            handle(topic, payload)
        done([m for m, _, _ in items])
        self.marks.release()

    def close(self) -> None:
        self.guard.close()
        self.marks.close()
