"""When the sensor is wrong (issue 16), through the real processes: readings published as an edge agent does
(source time in ``ts``) -> Mosquitto -> `vigil bridge` -> influxd, and `vigil alerting` -> a local HTTP
receiver (apprise json://).

``stale`` is judged on ARRIVAL time, so its devices publish live and the test waits a few real seconds;
``stuck``, ``forecast`` and ``jump`` are judged on source time, so their history (up to 48 minutes) is
published at once, as a backlog. Each test asserts the exact notifications the receiver got.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.bridge import publish_many, reading
from tests.support.chain import Chain, Hook, sleep
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

pytestmark = pytest.mark.integration

HEAD = """\
receivers:
  ops: ["{url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
delivery: {{retry_initial: 200ms, retry_max: 1s}}
rules:
"""

# One rule per condition, each on its own devices (a backlog device would be stale once its backlog is
# in; a flat freezer would be stuck). The default messages say why.
WRONG = """\
  - name: stale
    match: {device: "live-*", metric: temperature}
    stale: {factor: 8, min: 1s}     # 8 x the learned 0.5 s: 4 s without a reading
    notify: ops
  - name: stuck
    match: {device: "st-*", metric: temperature}
    stuck: {after: 10m}
    notify: ops
  - name: forecast
    match: {device: "fc-*", metric: temperature}
    forecast: {above: -12, within: 20m, window: 30m}
    notify: ops
  - name: jump
    match: {device: "jp-*", metric: temperature}
    jump: {max_step: 5, per: 1m}
    notify: ops
"""

# Sensible thresholds for a freezer: warn 20 minutes before -12 °C; a probe cannot move 10 °C in a minute.
FREEZER = """\
  - name: warming
    match: {device: "fz-*", metric: temperature}
    forecast: {above: -12, within: 20m, window: 30m}
    notify: ops
  - name: implausible
    match: {device: "fz-*", metric: temperature}
    jump: {max_step: 10, per: 1m}
    notify: ops
  - name: night-stuck
    match: {device: "night-*", metric: temperature}
    stuck: {after: 5s}
    notify: ops
  - name: night-stale
    match: {device: "night-*", metric: temperature}
    stale: {factor: 8, min: 1s}
    notify: ops
"""


def title(state: str, rule: str, series: str) -> str:
    return f"[{state} warning] {rule} {series}/temperature"


def message(hook: Hook, state: str, rule: str, series: str) -> str:
    (body,) = [b for b in list(hook.bodies) if b.get("title") == title(state, rule, series)]
    return str(body.get("message", ""))


class Live:
    """Sensors that publish a reading every 0.5 s with the current time as source time, until stopped.
    ``values`` maps device/sensor to a function of the reading's number."""

    def __init__(self, broker: Mosquitto, values: dict[str, Callable[[int], float]]) -> None:
        self.values = dict(values)
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"live-{free_port()}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="e2e-live", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.done.wait(0.5):
            with self.lock:
                for series, f in sorted(self.values.items()):
                    self.client.publish(f"vigil/readings/{series}", reading(f(n), time.time()), qos=1)
            n += 1

    def stop(self, series: str) -> None:
        with self.lock:
            del self.values[series]

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def backlog(series: dict[str, list[float]], step: float, end: float) -> list[tuple[str, bytes]]:
    """Every series' readings, ``step`` seconds apart and ending at ``end``, in source-time order."""
    out: list[tuple[float, str, bytes]] = []
    for name, values in series.items():
        start = end - step * (len(values) - 1)
        out += [(start + step * i, f"vigil/readings/{name}", reading(v, start + step * i, seq=i))
                for i, v in enumerate(values)]
    return [(topic, payload) for _, topic, payload in sorted(out, key=lambda m: (m[0], m[1]))]


@pytest.fixture
def chain_of(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str,
             hook: Hook) -> Iterator[Callable[[str], Chain]]:
    chains: list[Chain] = []

    def make(rules: str) -> Chain:
        c = Chain(tmp_path, mosquitto, influxd, influx_db, hook, rules=HEAD.format(url=hook.url) + rules)
        c.start()
        chains.append(c)
        return c

    yield make
    for c in chains:
        c.close()


def test_each_condition_fires_once_with_its_reason_and_healthy_sensors_stay_quiet(
        chain_of: Callable[[str], Chain], mosquitto: Mosquitto, hook: Hook) -> None:
    chain: Chain = chain_of(WRONG)
    live = Live(mosquitto, {"live-dead/t0": lambda n: -18 + 0.1 * (n % 3),
                            "live-ok/t0": lambda n: -18 + 0.1 * (n % 3)})
    try:
        now = time.time()
        publish_many(mosquitto, backlog({
            # stuck: t0 reads the same while its sibling t1 moves; st-ok's both move
            "st-bad/t0": [-18.2] * 30, "st-bad/t1": [-19 + 0.05 * i for i in range(30)],
            "st-ok/t0": [-18 + 0.1 * (i % 5) for i in range(30)], "st-ok/t1": [-19 + 0.05 * i for i in range(30)],
            # forecast: flat for half an hour, then +0.3 °C/min (-12 would be reached at 55m40s); ends at 47m
            "fc-warm/t0": [-20.0] * 30 + [-19.7 + 0.3 * i for i in range(18)],
            "fc-ok/t0": [-18 + 0.3 * math.sin(i) for i in range(48)],
        }, 60.0, now))
        # jump: a reading 43 °C from the one 10 s before; jp-ok moves by tenths
        publish_many(mosquitto, backlog({"jp-bad/t0": [-18.2, -18.1, 25.0],
                                         "jp-ok/t0": [-18.2, -18.0, -17.9]}, 10.0, now - 10))
        sleep(4.0)  # the stale rule learned both live sensors' interval (5 of them: 2.5 s)
        live.stop("live-dead/t0")
        fired = Counter([title("FIRING", "stale", "live-dead/t0"), title("FIRING", "stuck", "st-bad/t0"),
                         title("FIRING", "forecast", "fc-warm/t0"), title("FIRING", "jump", "jp-bad/t0")])
        assert wait_until(lambda: hook.titles() == fired, 30), (hook.titles(), chain.engine.output()[-3000:])

        assert "live-dead/t0 has sent nothing for " in message(hook, "FIRING", "stale", "live-dead/t0")
        assert "st-bad/t0 has read -18.2 °C unchanged since " in message(hook, "FIRING", "stuck", "st-bad/t0")
        assert "fc-warm/t0 will reach -12.0 °C in about " in message(hook, "FIRING", "forecast", "fc-warm/t0")
        assert "jp-bad/t0 jumped from -18.1 to 25.0 °C in 10 s" in message(hook, "FIRING", "jump", "jp-bad/t0")

        # the spike's return is plausible against the reading before it: the jump resolves, once
        publish_many(mosquitto, [("vigil/readings/jp-bad/t0", reading(-18.0, time.time(), seq=3)),
                                 ("vigil/readings/jp-ok/t0", reading(-18.0, time.time(), seq=3))])
        told = fired + Counter([title("RESOLVED", "jump", "jp-bad/t0")])
        assert wait_until(lambda: hook.titles() == told, 20), hook.titles()
        assert "jp-bad/t0 moves plausibly again (-18.0 °C)" in message(hook, "RESOLVED", "jump", "jp-bad/t0")
        sleep(5.0)  # a second notification, or one for a healthy sensor, would come now
        assert hook.titles() == told, hook.titles()
    finally:
        live.close()


def test_no_false_alarm_for_a_still_night_a_door_opened_and_closed_or_a_defrost_cycle(
        chain_of: Callable[[str], Chain], mosquitto: Mosquitto, hook: Hook) -> None:
    chain: Chain = chain_of(FREEZER)
    # a still night: both sensors of the device read the same value, live, for 3 x the stuck limit
    live = Live(mosquitto, {"night-1/t0": lambda n: -18.0, "night-1/t1": lambda n: -19.5})
    try:
        now = time.time()
        # 1 reading a minute: a door opened for 5 minutes (-18 up to -8 and back), a defrost heater run that
        # warms the freezer to -14 °C over 15 minutes (slowing down near the top) and cools it again
        publish_many(mosquitto, backlog({
            "fz-door/t0": [-18.0] * 30 + [-12.0, -8.0, -11.0, -15.0, -17.0] + [-18.0] * 30,
            "fz-defrost/t0": defrost(15, -14.0),
        }, 60.0, now))
        # a canary after them: the rules run and the receiver hears (a probe that jumps 58 °C in a minute)
        publish_many(mosquitto, backlog({"fz-canary/t0": [-18.0, -18.1, 40.0]}, 60.0, time.time()))
        canary = Counter([title("FIRING", "implausible", "fz-canary/t0")])
        assert wait_until(lambda: hook.titles() == canary, 30), (hook.titles(), chain.engine.output()[-3000:])
        sleep(15.0)  # the night goes on, three times past the stuck limit, readings arriving every 0.5 s
        assert hook.titles() == canary, [(b.get("title"), b.get("message")) for b in hook.bodies]
    finally:
        live.close()


def defrost(rise: int, peak: float) -> list[float]:
    """One reading a minute: -20 °C for 40 minutes, a heater run warming it to ``peak`` over ``rise``
    minutes (a half sine: slowing down near the top), cooling as long, then -20 °C for 20 minutes."""
    return ([-20.0] * 40 + [round(-20 + (peak + 20) * math.sin(math.pi * k / (2 * rise)), 2)
                            for k in range(1, 2 * rise)] + [-20.0] * 20)


@pytest.mark.parametrize("rise", [10, 20])
def test_no_forecast_for_a_defrost_cycle_peaking_2_degrees_below_the_threshold(
        chain_of: Callable[[str], Chain], mosquitto: Mosquitto, hook: Hook, rise: int) -> None:
    chain = chain_of(FREEZER)
    publish_many(mosquitto, backlog({"fz-defrost/t0": defrost(rise, -14.0)}, 60.0, time.time()))
    publish_many(mosquitto, backlog({"fz-canary/t0": [-18.0, -18.1, 40.0]}, 60.0, time.time()))
    canary = title("FIRING", "implausible", "fz-canary/t0")
    assert wait_until(lambda: canary in hook.titles(), 30), (hook.titles(), chain.engine.output()[-3000:])
    sleep(3.0)
    assert hook.titles() == Counter([canary]), [(b.get("title"), b.get("message")) for b in hook.bodies]
