"""The engine's poison guard around its batches: marked in hand, suspects alone and in order, poison refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerting.inhand import InHand, in_hand_path, marked

Msg = tuple[str, bytes]


class Died(BaseException):
    """The process dying in the middle of a message (nothing runs after it in the loop)."""


class Loop:
    def __init__(self, path: Path, kill: bytes = b"") -> None:
        self.refused: list[tuple[str, str]] = []
        self.handled: list[bytes] = []
        self.acked: list[list[bytes]] = []
        self.kill = kill
        self.in_hand = InHand(path, lambda topic, reason, detail: self.refused.append((topic, reason)),
                              key=lambda m: m)

    def handle(self, topic: str, payload: bytes) -> None:
        if payload == self.kill:
            raise Died()
        self.handled.append(payload)

    def run(self, batch: list[Msg]) -> None:
        self.in_hand.consume(batch, self.handle, lambda ms: self.acked.append([p for _, p in ms]))


def batch(*payloads: bytes) -> list[Msg]:
    return [("vigil/events/d/temperature", p) for p in payloads]


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_batch_is_marked_while_in_hand_and_acknowledged_in_one_go(tmp_path: Path) -> None:
    path = in_hand_path(tmp_path / "alerts.db")
    assert path == tmp_path / "alerts.poison.db"
    loop = Loop(path)
    seen: list[int] = []
    loop.in_hand.consume(batch(b"a", b"b"), lambda t, p: seen.append(len(marked(path))), lambda ms: None)
    assert seen == [2, 2] and marked(path) == [] and rows(path, "in_hand") == 0
    loop.run(batch(b"c", b"d"))
    assert (loop.handled, loop.acked, loop.refused) == ([b"c", b"d"], [[b"c", b"d"]], [])


def test_a_message_that_kills_the_engine_twice_is_refused_and_the_rest_handled_in_order(tmp_path: Path) -> None:
    path = tmp_path / "alerts.poison.db"
    first = Loop(path, kill=b"x")
    with pytest.raises(Died):  # 1: dies with the batch in hand
        first.run(batch(b"a", b"x", b"b"))
    second = Loop(path, kill=b"x")
    assert second.in_hand.suspects == 3
    with pytest.raises(Died):  # 2: redelivered; the suspects alone, in order; dies again on x alone
        second.run(batch(b"n", b"a", b"x", b"b"))
    assert (second.handled, second.acked) == ([b"n", b"a"], [[b"n"], [b"a"]])
    third = Loop(path, kill=b"x")  # 3: x is poison: refused, acknowledged, not handled
    third.run(batch(b"x", b"b", b"m", b"k"))
    assert third.handled == [b"b", b"m", b"k"]
    assert third.acked == [[b"x"], [b"b"], [b"m", b"k"]]
    assert third.refused == [("vigil/events/d/temperature", "poison")]
    assert third.in_hand.suspects == 0 and rows(path, "suspects") == 0 and rows(path, "in_hand") == 0
    fourth = Loop(path)  # nothing left over: a later identical message is handled again
    fourth.run(batch(b"x"))
    assert (fourth.handled, fourth.refused) == ([b"x"], [])


def test_a_failure_in_the_loop_makes_what_was_in_hand_suspect(tmp_path: Path) -> None:
    path = tmp_path / "alerts.poison.db"
    loop = Loop(path)

    def failing_ack(messages: list[Msg]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        loop.in_hand.consume(batch(b"a", b"b"), loop.handle, failing_ack)
    assert loop.in_hand.suspects == 2 and rows(path, "in_hand") == 0
    loop.run(batch(b"a", b"b"))
    assert loop.acked == [[b"a"], [b"b"]] and loop.in_hand.suspects == 0


class Lost(Exception):
    """Not the message's fault (a shared state's partition lost): stands for alerting.engine.PartitionLost."""


def test_an_innocent_failure_leaves_no_suspect_and_a_suspect_alone_is_not_made_poison(tmp_path: Path) -> None:
    path = tmp_path / "alerts.poison.db"
    failing = True

    def done(ms: list[Msg]) -> None:
        if failing:
            raise Lost()

    guarded = InHand(path, lambda *a: None, key=lambda m: m, innocent=(Lost,))
    with pytest.raises(Lost):  # the commit fails: the batch goes back to the broker, unsuspected
        guarded.consume(batch(b"a", b"b"), lambda t, p: None, done)
    assert (guarded.suspects, rows(path, "in_hand"), rows(path, "suspects"), marked(path)) == (0, 0, 0, [])
    # a real death makes them suspects; an innocent failure while one is handled alone leaves it a suspect
    with pytest.raises(Died):
        guarded.consume(batch(b"x"), Loop(path, kill=b"x").handle, done)
    guarded.close()  # the process died with x in hand; started again, it finds x marked: a suspect
    guarded = InHand(path, lambda *a: None, key=lambda m: m, innocent=(Lost,))
    assert guarded.suspects == 1
    with pytest.raises(Lost):
        guarded.consume(batch(b"x"), lambda t, p: None, done)
    assert guarded.guard.verdict(next(iter(guarded.guard.suspects))) is False  # not poison
    failing = False
    handled: list[bytes] = []
    guarded.consume(batch(b"x"), lambda t, p: handled.append(p), done)
    assert handled == [b"x"] and guarded.suspects == 0
    guarded.close()


def test_the_mark_of_a_large_batch_is_whole_and_one_left_at_a_stop_makes_its_messages_suspects(tmp_path: Path) -> None:
    path = tmp_path / "alerts.poison.db"
    payloads = [f"m{i}".encode() for i in range(300)]  # more fingerprints than one page of the mapped file holds
    seen: list[int] = []
    loop = Loop(path)
    loop.in_hand.consume(batch(*payloads), lambda t, p: seen.append(len(marked(path))), lambda ms: None)
    assert set(seen) == {300} and marked(path) == []
    stopped = Loop(path, kill=b"m299")
    with pytest.raises(Died):
        stopped.run(batch(*payloads))
    assert len(marked(path)) == 300  # left in the file, as by a killed process
    again = Loop(path)
    assert again.in_hand.suspects == 300 and marked(path) == [] and rows(path, "in_hand") == 0
