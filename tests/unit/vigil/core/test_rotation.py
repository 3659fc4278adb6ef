"""Rotation over a list of brokers: the next one at once, the backoff only after a whole round failed, and a
connection that drops within STABLE_CONNECTION seconds does not start the backoff over."""

from __future__ import annotations

import random

import pytest

from vigil.core.backoff import STABLE_CONNECTION, Rotation, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_broker_moves_on_at_once_and_a_failed_round_waits_by_the_formula() -> None:
    expected = random.Random(7)
    r = Rotation(3, 30.0, first=1.0, rng=random.Random(7), clock=Clock())
    steps = [(r.failed(), r.index) for _ in range(9)]
    assert [i for _, i in steps] == [1, 2, 0] * 3
    assert [d for d, _ in steps] == [0.0, 0.0, backoff_delay(1, 30.0, rng=expected),
                                     0.0, 0.0, backoff_delay(2, 30.0, rng=expected),
                                     0.0, 0.0, backoff_delay(3, 30.0, rng=expected)]


def test_a_lost_connection_tries_the_next_broker_at_once_and_a_stable_one_starts_the_count_over() -> None:
    clock = Clock()
    r = Rotation(2, 60.0, first=1.0, rng=random.Random(1), clock=clock)
    for _ in range(8):  # four failed rounds: the next wait would be up to 16 s
        r.failed()
    assert r.attempt == 4 and r.index == 0
    r.connected()
    clock.now += STABLE_CONNECTION
    assert r.failed() == 0.0 and r.index == 1  # lost after a stable while: B at once
    assert 0.5 <= r.failed() <= 1.0 and r.attempt == 1  # B refused too: the first wait, not the fifth


def test_a_flapping_broker_is_not_hammered() -> None:
    clock = Clock()
    r = Rotation(1, 60.0, first=1.0, rng=random.Random(2), clock=clock)
    waits = []
    for _ in range(7):  # accepts, then drops after 1 s, every time
        r.connected()
        clock.now += 1.0
        waits.append(r.failed())
    assert r.attempt == 7 and waits[-1] >= 30.0  # grew to the cap as if each try had failed
    assert all(top / 2 <= w <= top for w, top in zip(waits, [1, 2, 4, 8, 16, 32, 60]))


def test_one_broker_is_the_plain_backoff_and_zero_brokers_is_an_error() -> None:
    a, b = random.Random(3), random.Random(3)
    r = Rotation(1, 120.0, first=2.0, rng=a, clock=Clock())
    assert [r.failed() for _ in range(10)] == [backoff_delay(n, 120.0, first=2.0, rng=b) for n in range(1, 11)]
    assert r.index == 0
    with pytest.raises(ValueError):
        Rotation(0)
