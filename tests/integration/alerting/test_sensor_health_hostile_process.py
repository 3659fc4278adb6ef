"""Hostile readings through the real `vigil alerting` process with stale, stuck, jump (holding out), noise and
forecast rules loaded: NaN-like and huge values, out-of-order and far-future timestamps, a flood of one series.
The process keeps running, refuses what is not a reading, and the other series' alerts still fire."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto, free_port

pytestmark = pytest.mark.integration

RULES = """
receivers:
  ops: ["{url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: hot, match: {{metric: temperature}}, above: 30, notify: ops, message: "{{{{ device }}}} is hot"}}
  - {{name: implausible, match: {{metric: temperature}}, jump: {{max_step: 5, per: 1m}}, hold_out: true, notify: ops}}
  - {{name: noisy, match: {{metric: temperature}}, noise: {{factor: 5, window: 10m, recent: 1m}}, notify: ops}}
  - {{name: silent, match: {{metric: temperature}}, stale: {{factor: 3, min: 1s}}}}
  - {{name: still, match: {{metric: temperature}}, stuck: {{factor: 2, warmup: 1m}}}}
  - {{name: warming, match: {{metric: temperature}}, forecast: {{above: 30, within: 10m, window: 5m, min_samples: 5}}}}
"""
FLOOD = 5000


def body(value: object, ts: object, device: str = "h") -> bytes:
    return json.dumps({"device": device, "sensor": "t0", "metric": "temperature", "value": value, "ts": ts,
                       "unit": "°C"}).encode()


def hostile(now: float) -> list[bytes]:
    """Readings of series h/t0/temperature: refused ones first, then ones that pass the decoder's bounds."""
    return [
        b'{"device": "h", "sensor": "t0", "metric": "temperature", "value": NaN, "ts": 1}',
        b'{"device": "h", "sensor": "t0", "metric": "temperature", "value": Infinity, "ts": 1}',
        body("nan", now), body("-inf", now), body(1e309, now), body(1e19, now), body(20.0, "nan"),
        body(20.0, 1e400), body(None, now), body([1], now), body({"a": 1}, now),
        # accepted: huge finite values, a timestamp from 1970, one far in the future, out of order, subnormal
        body(1e18, now), body(-1e18, now), body(1e18, now), body(20.0, 1.0), body(20.0, now + 1e9),
        body(20.0, 1e15), body(-5e-324, now - 100), body(1e18, now - 50), body(0.0, now - 3600),
    ]


def value(text: str, sample: str) -> Optional[float]:
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.rsplit(" ", 1)[0] == sample),
                None)


def test_hostile_readings_with_sensor_health_rules_leave_other_series_alerting(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(url=receiver.url))
    port = free_port()
    engine = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
                             "--state", str(tmp_path / "alerts.db"), "--metrics-listen", f"127.0.0.1:{port}"])
    engine.start()
    wait_for(lambda: "connected to the broker" in engine.output(), 30, "the engine to connect")
    now = time.time()
    for i in range(40):  # a quiet history for h, so every condition judges it
        probe.event("h", 20.0 + 0.01 * (i % 3), ts=now - 400 + 10 * i)
    for round_ in range(3):
        for payload in hostile(time.time()):
            probe.raw("vigil/events/h/temperature", payload)
        probe.event(f"good-{round_}", 35.0)  # another series, between the hostile ones
    # a flood of one series: readings as fast as the client sends them, alternating wildly
    info = None
    for i in range(FLOOD):
        info = probe.client.publish("vigil/events/flood/temperature",
                                    body(1e18 if i % 2 else -1e18, now - FLOOD + i, device="flood"), qos=1)
    assert info is not None
    info.wait_for_publish(30)
    probe.event("good-3", 35.0)
    probe.event("good-4", -18.0)
    probe.event("good-4", 25.0)  # a jump on a good series, after the flood: judged and held out
    expected = {f"[FIRING warning] hot good-{i}/t0/temperature" for i in range(4)} | {
        "[FIRING warning] implausible good-4/t0/temperature"}
    wait_for(lambda: {b.get("title") for b in receiver.bodies} >= expected, 60,
             f"the alerts of the good series; got {sorted({b.get('title') for b in receiver.bodies})}")
    assert engine.proc is not None and engine.proc.poll() is None, engine.output()[-3000:]
    titles = {b.get("title") for b in receiver.bodies}
    assert "[FIRING warning] hot good-4/t0/temperature" not in titles  # 25 °C held out of the threshold

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    wait_for(lambda: (value(scrape(), "vigil_alerting_events_total") or 0) >= 40 + 3 * 9 + FLOOD + 5, 60,
             "the engine to take the flood")
    text = scrape()
    assert value(text, 'vigil_alerting_refused_total{reason="not an event"}') == 3 * 11, text
    held = value(text, 'vigil_alerting_held_out_total{rule="implausible"}') or 0
    assert held >= 1 + FLOOD // 2, text
    # after the far-future timestamps, h's jump rule still judges its readings: 500 °C is held out
    probe.event("h", 20.0)
    probe.event("h", 500.0)
    wait_for(lambda: value(scrape(), 'vigil_alerting_held_out_total{rule="implausible"}') == held + 1, 30,
             "the jump on h to be held out")
    # every alert state it published is strict JSON (no NaN, no Infinity)
    for states in probe.alerts.values():
        for state in states:
            json.loads(json.dumps(state), parse_constant=lambda name: pytest.fail(f"{name} in an alert state"))
    log = engine.output()
    assert "Traceback" not in log and "restarted" not in log, log[-3000:]
    engine.stop()
