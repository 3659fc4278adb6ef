"""The poison guard's marks outlive the process: what was in hand becomes a suspect, a suspect in hand alone poison."""

from __future__ import annotations

from pathlib import Path

from vigil.core.poison import PoisonGuard, fingerprint

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
