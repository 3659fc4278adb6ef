"""The rule engine's poison guard: a message it was handling when it died is refused when it comes back.

The engine handles what the broker delivered in drained batches and acknowledges a batch once what
it caused is committed (alerting/mqttloop.py). :class:`InHand` wraps that loop with the marks of
vigil/core/poison.py, kept in a SQLite file beside the state file (``alerts.db`` -> ``alerts.poison.db``):

- a batch is marked in hand (its messages' fingerprints) before it is handled, and the
  mark is removed once the batch is acknowledged;
- after a death with a batch in hand, its messages are *suspects*: when they come back, the batch
  is cut around them, in order, and each suspect is handled alone (marked, handled, acknowledged,
  cleared) with nothing else in hand;
- a suspect in hand alone when the engine died again is *poison*: it is refused (logged once with
  its topic, counted on the engine's health under ``refused: {"poison": n}``) and acknowledged,
  not handled. The engine has no dead-letter topic.

So a message that kills the engine costs two restarts, never a crash loop. The cost when nothing is
suspect: one hash per message and two writes to memory per batch (the marks are a file mapped into
memory, ``alerts.poison.hand``: vigil/core/poison.py's :class:`~vigil.core.poison.Marks`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vigil.core.poison import PoisonGuard, fingerprint, marked, marks_path

__all__ = ["POISON_DETAIL", "InHand", "in_hand_path", "marked", "marks_path"]

M = TypeVar("M")

POISON_DETAIL = ("the rule engine stopped twice while handling this message, the second time with it alone in "
                 "hand; it is acknowledged and not handled again, so that the other messages go on")


def in_hand_path(state_path: str | Path) -> Path:
    """Where the engine keeps its marks: beside its state file."""
    p = Path(state_path)
    return p.with_name(f"{p.stem}.poison.db")


def topic_payload(message: Any) -> tuple[str, bytes]:
    """A message's topic and payload (alerting/mqttread.py's ``Incoming``); one the reader refused has
    nothing to handle (topic "")."""
    return ("", b"") if message.problem else (message.topic, message.payload)


class InHand:
    """Marks around the engine's batches; see the module's text. Used from the event loop only."""

    def __init__(self, path: str | Path, refuse: Callable[[str, str, str], None],
                 key: Callable[[Any], tuple[str, bytes]] = topic_payload,
                 innocent: tuple[type[Exception], ...] = ()) -> None:
        # a batch left marked in hand by a process that stopped: its messages are suspects now
        self.guard = PoisonGuard(path, part="rule engine", fate="refused as poison")
        self.refuse = refuse
        self.key = key
        self.innocent = innocent  # what stops the engine through no fault of the messages in hand

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
            guard.release_all()
            for fp, alone in list(guard.suspects.items()):
                if alone:
                    guard.back_to_suspect(fp)
            raise
        except Exception:
            guard.recover()
            raise

    def _run(self, items: list[tuple[M, str, bytes]], fps: list[bytes], handle: Callable[[str, bytes], None],
             done: Callable[[list[M]], None]) -> None:
        if not items:
            return
        mark = self.guard.hold(fps)
        for _, topic, payload in items:
            handle(topic, payload)
        done([m for m, _, _ in items])
        self.guard.release(mark)

    def close(self) -> None:
        self.guard.close()
