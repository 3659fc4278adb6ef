"""``restarts`` (issue 16, device health), through the real processes: a device's uptime published as the edge
agent's ``file`` sensor on /proc/uptime does (``metric: uptime``, seconds, source time in ``ts``) -> Mosquitto ->
`vigil bridge` -> influxd, and `vigil alerting` -> a local HTTP receiver (apprise json://).

The last twelve hours of each device are published at once, as a backlog (the condition judges on source time).
A device that rebooted three times within a day fires exactly one notification that says so, and its retained
alert state carries the reason as data; a device whose uptime only grows, and one that rebooted once, raise
nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bridge import publish_many
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
  - name: reboots
    match: {{device: "rb-*", metric: uptime}}
    restarts: {{count: 3, within: 1d}}
    notify: ops
  - name: canary
    match: {{device: "canary", metric: temperature}}
    jump: {{max_step: 5, per: 1m}}
    notify: ops
"""
STEP = 300.0  # an uptime reading every 5 minutes
N = 144       # twelve hours of them


def uptimes(reboots: list[int]) -> list[float]:
    """The uptime at each reading: it grows by STEP and starts again from a few seconds at each index in
    ``reboots``."""
    out, up = [], 86400.0 * 3  # up three days when the backlog starts
    for i in range(N):
        up = 17.0 if i in reboots else up + STEP
        out.append(up)
    return out


def payload(metric: str, value: float, ts: float, unit: str, seq: int) -> bytes:
    return json.dumps({"metric": metric, "value": value, "ts": ts, "unit": unit, "seq": seq}).encode()


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook) -> Iterator[Chain]:
    c = Chain(tmp_path, mosquitto, influxd, influx_db, hook, rules=RULES.format(url=hook.url))
    c.start()
    yield c
    c.close()


def test_a_device_that_keeps_rebooting_fires_once_and_the_others_stay_quiet(
        chain: Chain, mosquitto: Mosquitto, hook: Hook) -> None:
    end = time.time()
    devices = {"rb-flaky": uptimes([30, 70, 110]), "rb-steady": uptimes([]), "rb-once": uptimes([50])}
    messages: list[tuple[float, str, bytes]] = []
    for device, values in devices.items():
        start = end - STEP * (N - 1)
        messages += [(start + STEP * i, f"vigil/readings/{device}/sys", payload("uptime", v, start + STEP * i, "s", i))
                     for i, v in enumerate(values)]
    publish_many(mosquitto, [(topic, body) for _, topic, body in sorted(messages, key=lambda m: (m[0], m[1]))])
    # a canary after them: when it is heard, every reading before it went through the rules
    now = time.time()
    publish_many(mosquitto, [("vigil/readings/canary/t0", payload("temperature", v, now - 20 + 10 * i, "°C", i))
                             for i, v in enumerate([-18.0, -18.1, 40.0])])
    flaky, canary = "[FIRING warning] reboots rb-flaky/sys/uptime", "[FIRING warning] canary canary/t0/temperature"
    told = Counter([flaky, canary])
    assert wait_until(lambda: hook.titles() == told, 40), (hook.titles(), chain.engine.output()[-3000:])
    (body,) = [b for b in list(hook.bodies) if b.get("title") == flaky]
    # (a backlog: the message also says it is reported late, when it happened and when Vigil learned of it)
    assert str(body.get("message", "")).startswith("rb-flaky rebooted 3 times in the last 24h (reported late"), body

    watcher = Session(mosquitto.port, None, None)
    watcher.connect()
    try:
        watcher.subscribe("vigil/alerts/reboots/rb-flaky/sys/uptime")
        state = json.loads(watcher.wait_for("vigil/alerts/reboots/rb-flaky/sys/uptime").payload)
    finally:
        watcher.close()
    assert state["state"] == "firing" and state["reason"]["kind"] == "restarts", state
    assert state["reason"]["count"] == 3.0 and state["reason"]["last"] == pytest.approx(end - STEP * (N - 1 - 110))

    sleep(3.0)  # a second notification, or one for a quiet device, would come now
    assert hook.titles() == told, [(b.get("title"), b.get("message")) for b in hook.bodies]
