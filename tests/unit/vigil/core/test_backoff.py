"""One retry-backoff formula for every part: doubling from ``first``, capped, jittered in [top/2, top]."""

from __future__ import annotations

import random
import subprocess
import sys

from vigil.core.backoff import backoff_delay


def test_delays_double_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(3)
    delays = [backoff_delay(n, 60.0, first=1.0, rng=rng) for n in range(1, 13)]
    tops = [min(60.0, 2.0 ** (n - 1)) for n in range(1, 13)]
    assert all(top / 2 <= d <= top for d, top in zip(delays, tops)), delays
    assert delays[-1] >= 30 and len({round(d, 6) for d in delays[-4:]}) == 4  # jittered at the cap


def test_first_and_cap_scale_it_and_huge_attempt_counts_do_not_overflow() -> None:
    rng = random.Random(4)
    assert 2.5 <= backoff_delay(1, 300.0, first=5.0, rng=rng) <= 5.0
    assert 5.0 <= backoff_delay(2, 300.0, first=5.0, rng=rng) <= 10.0
    for attempt in (0, -3, 10**6, 10**30):
        assert 0 < backoff_delay(attempt, 30.0, rng=rng) <= 30.0


def test_the_courier_waits_by_the_formula() -> None:
    # the courier drew base/2 + uniform(0, base/2): the same number from the same generator
    a, b = random.Random(9), random.Random(9)
    for attempts in range(1, 20):
        base = min(300.0, 5.0 * 2 ** min(attempts - 1, 30))
        assert backoff_delay(attempts, 300.0, first=5.0, rng=a) == base / 2 + b.uniform(0, base / 2)


def test_the_formula_needs_neither_paho_nor_aiomqtt() -> None:
    code = "import sys, vigil.core.backoff; print(sorted(m for m in sys.modules if 'mqtt' in m or m == 'pydantic'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_the_mqtt_clients_wait_by_the_formula() -> None:
    from vigil.core import mqtt

    assert mqtt.backoff_delay is backoff_delay  # the rule engine's, the dashboard's and `vigil up`'s reconnects
