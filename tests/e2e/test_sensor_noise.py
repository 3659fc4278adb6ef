"""``noise`` (issue 16), through the real processes: readings published as an edge agent does (source time in
``ts``) -> Mosquitto -> `vigil bridge` -> influxd, and `vigil alerting` -> a local HTTP receiver (apprise
json://).

Noise is judged on the readings' source time, so each sensor's last 70 minutes (a reading every 10 s) are
published at once, as a backlog. A sensor that becomes noisy fires exactly one notification that says why, and
its retained alert state carries the reason as data (for the dashboard); a sensor whose noise is its usual, a
steady trend, a single spike, a door opened and closed, a slow defrost cycle and a still night raise nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.bridge import publish_many, reading
from tests.support.chain import Chain, Hook, sleep
from tests.support.mqttclient import Session
from tests.support.services import Influxd, Mosquitto, wait_until

pytestmark = pytest.mark.integration

RULES = """\
receivers:
  ops: ["{url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
delivery: {{retry_initial: 200ms, retry_max: 1s}}
rules:
  - name: noisy
    match: {{device: "nz-*", metric: temperature}}
    noise: {{factor: 5, window: 1h, recent: 5m}}
    notify: ops
  - name: canary
    match: {{device: "canary", metric: temperature}}
    jump: {{max_step: 5, per: 1m}}
    notify: ops
"""
STEP = 10.0  # seconds between readings
N = 420      # 70 minutes of them


def series(seed: int) -> dict[str, list[float]]:
    """Each sensor's readings, oldest first, rounded as a probe reports them."""
    rng = np.random.default_rng(seed)
    calm = -18 + rng.normal(0, 0.05, N)
    t = np.arange(N)
    spike = calm.copy()
    spike[N - 12] = 10.0  # one wild reading two minutes before the end: inside the recent window
    door = calm.copy()    # opened 4 minutes before the end: +10 °C in 40 s, held a minute, back in 80 s
    door[N - 25:N - 8] += [2.5, 5, 7.5, 10, 10, 10, 10, 10, 10, 10, 8.75, 7.5, 6.25, 5, 3.75, 2.5, 1.25]
    out = {
        # an hour at 0.05 °C from one reading to the next, then 10 minutes at 1 °C: a failing probe
        "nz-bad/t0": [*(-18 + rng.normal(0, 0.05, N - 60)), *(-18 + rng.normal(0, 1.0, 60))],
        "nz-usual/t0": list(-18 + rng.normal(0, 0.3, N)),      # noisy, but always this noisy
        "nz-trend/t0": list(np.linspace(-18, -8, N) + rng.normal(0, 0.05, N)),
        "nz-spike/t0": list(spike),
        "nz-door/t0": list(door),
        # a defrost heater run: up 6 °C and back over 20 minutes, slowly
        "nz-defrost/t0": list(-20 + 6 * np.clip(np.sin(np.pi * (t - 240) / 120), 0, None) * (t >= 240)
                              + rng.normal(0, 0.05, N)),
        "nz-night/t0": [-18.0] * N,                              # a still night: not one tick
    }
    return {name: [round(float(v), 2) for v in values] for name, values in out.items()}


def backlog(readings: dict[str, list[float]], end: float) -> list[tuple[str, bytes]]:
    """Every series' readings, STEP apart and ending at ``end``, in source-time order."""
    out: list[tuple[float, str, bytes]] = []
    for name, values in readings.items():
        start = end - STEP * (len(values) - 1)
        out += [(start + STEP * i, f"vigil/readings/{name}", reading(v, start + STEP * i, seq=i))
                for i, v in enumerate(values)]
    return [(topic, payload) for _, topic, payload in sorted(out, key=lambda m: (m[0], m[1]))]


def title(state: str, rule: str, sensor: str) -> str:
    return f"[{state} warning] {rule} {sensor}/temperature"


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook) -> Iterator[Chain]:
    c = Chain(tmp_path, mosquitto, influxd, influx_db, hook, rules=RULES.format(url=hook.url))
    c.start()
    yield c
    c.close()


def test_a_sensor_that_becomes_noisy_fires_once_with_its_reason_and_the_others_stay_quiet(
        chain: Chain, mosquitto: Mosquitto, hook: Hook) -> None:
    now = time.time()
    publish_many(mosquitto, backlog(series(16), now))
    # a canary after them: when it is heard, every reading before it went through the rules
    publish_many(mosquitto, backlog({"canary/t0": [-18.0, -18.1, 40.0]}, time.time()))
    told = Counter([title("FIRING", "noisy", "nz-bad/t0"), title("FIRING", "canary", "canary/t0")])
    assert wait_until(lambda: hook.titles() == told, 40), (hook.titles(), chain.engine.output()[-3000:])

    (body,) = [b for b in list(hook.bodies) if b.get("title") == title("FIRING", "noisy", "nz-bad/t0")]
    message = str(body.get("message", ""))
    assert "nz-bad/t0 is noisy: its readings vary by " in message and "x its usual " in message, message

    # the retained state says why as data: what the dashboard words ("noisy: 6x its usual spread")
    watcher = Session(mosquitto.port, None, None)
    watcher.connect()
    try:
        watcher.subscribe("vigil/alerts/noisy/nz-bad/t0/temperature")
        state = json.loads(watcher.wait_for("vigil/alerts/noisy/nz-bad/t0/temperature").payload)
    finally:
        watcher.close()
    reason = state["reason"]
    assert state["state"] == "firing" and reason["kind"] == "noise" and reason["unit"] == "°C", state
    assert reason["spread"] > 5 * reason["usual"] > 0
    assert math.isclose(reason["ratio"], reason["spread"] / reason["usual"], rel_tol=1e-6)

    sleep(3.0)  # a second notification, or one for a quiet sensor, would come now
    assert hook.titles() == told, [(b.get("title"), b.get("message")) for b in hook.bodies]
