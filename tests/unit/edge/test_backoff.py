"""Reconnect delays grow with jitter up to the cap, and start over after a connect."""

from __future__ import annotations

import random

from edge.link import Backoff


def test_delays_grow_with_jitter_up_to_the_cap() -> None:
    b = Backoff(1.0, 60.0, random.Random(1))
    delays = [b.next() for _ in range(12)]
    tops = [min(60.0, 2.0**n) for n in range(12)]
    assert all(top / 2 <= d <= top for d, top in zip(delays, tops))
    assert max(delays) <= 60 and delays[-1] >= 30
    assert len({round(d, 6) for d in delays[-4:]}) == 4  # jittered, not one fixed value
    b.reset()
    assert b.next() <= 1.0
