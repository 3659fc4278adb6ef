"""The poison guard's marks outlive the process: what was in hand becomes a suspect, a suspect in hand alone poison."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vigil.core.poison import PoisonGuard, fingerprint, marked

A, B, C = (fingerprint(f"vigil/readings/d/{s}", b"21.5") for s in "abc")


def test_a_batch_released_leaves_nothing_and_one_in_hand_at_a_stop_becomes_suspects(tmp_path: Path) -> None:
    guard = PoisonGuard(tmp_path / "spool.db")
    guard.release(guard.hold([A]))
    guard.hold([B, C])  # the process dies here (the file is not closed)
    again = PoisonGuard(tmp_path / "spool.db")
    assert again.suspects == {B: False, C: False}
    assert (again.verdict(A), again.verdict(B)) == (None, False)


def test_a_suspect_in_hand_alone_at_a_stop_is_poison_and_cleared_once_acknowledged(tmp_path: Path) -> None:
    PoisonGuard(tmp_path / "spool.db").hold([A, B])
    second = PoisonGuard(tmp_path / "spool.db")
    second.hold_alone(A)  # dies again, with A alone in hand
    third = PoisonGuard(tmp_path / "spool.db")
    assert (third.verdict(A), third.verdict(B)) == (True, False)
    third.clear(A)
    third.clear(B)
    assert PoisonGuard(tmp_path / "spool.db").suspects == {}


def test_a_clean_stop_gives_everything_back_and_a_suspect_handed_back_is_not_poison(tmp_path: Path) -> None:
    PoisonGuard(tmp_path / "spool.db").hold([A, B])
    guard = PoisonGuard(tmp_path / "spool.db")
    guard.hold([C])
    guard.hold_alone(A)
    guard.back_to_suspect(A)  # the connection was lost: A goes back to the broker
    guard.release_all()
    guard.close()
    assert PoisonGuard(tmp_path / "spool.db").suspects == {A: False, B: False}


def test_fingerprints_tell_topics_and_payloads_apart() -> None:
    assert len({fingerprint("a/b", b"1"), fingerprint("a/c", b"1"), fingerprint("a/b", b"2")}) == 3
    assert fingerprint("a/b", b"1") == fingerprint("a/b", b"1") and len(A) == 16


def test_several_batches_in_hand_any_released_first_leave_the_others_marked(tmp_path: Path) -> None:
    guard = PoisonGuard(tmp_path / "spool.db")
    first, second = guard.hold([A]), guard.hold([B])
    guard.hold([C])
    guard.release(second)  # the stages release in order; any order must hold
    assert marked(tmp_path / "spool.db") == [A, C]
    guard.release(first)
    assert marked(tmp_path / "spool.db") == [C]  # the process dies here
    assert PoisonGuard(tmp_path / "spool.db").suspects == {C: False}


def test_a_batch_larger_than_a_page_is_marked_whole(tmp_path: Path) -> None:
    many = [fingerprint("vigil/readings/d/s", str(i).encode()) for i in range(1000)]  # 16 KB of marks
    guard = PoisonGuard(tmp_path / "spool.db")
    guard.hold(many[:10])
    guard.hold(many[10:])
    again = PoisonGuard(tmp_path / "spool.db")
    assert set(again.suspects) == set(many) and marked(tmp_path / "spool.db") == []


def test_a_mark_left_in_the_table_by_a_bridge_before_the_mapped_marks_becomes_suspects(tmp_path: Path) -> None:
    PoisonGuard(tmp_path / "spool.db").close()
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        conn.execute("INSERT INTO in_hand (fps) VALUES (?)", (A + B,))
    assert PoisonGuard(tmp_path / "spool.db").suspects == {A: False, B: False}
