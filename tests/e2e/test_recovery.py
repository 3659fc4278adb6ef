"""When Vigil itself was away (issue 19): through the real bridge and rule engine, against a private
Mosquitto, with a local HTTP receiver counting notifications and the retained alert states telling
the times. Devices publish readings as an edge agent does (source time in ``ts``).

Each test asserts the exact set of notifications and the times they state.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.alerting import MqttProbe
from tests.support.bridge import publish_many, reading
from tests.support.chain import Chain, Hook, PersistentRecorder, sleep, wait_connected
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

pytestmark = pytest.mark.integration

NODATA = 4.0


def rules(url: str) -> str:
    return f"""\
receivers:
  ops: ["{url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
delivery: {{retry_initial: 200ms, retry_max: 1s}}
rules:
  - name: silent
    match: {{metric: temperature, device: "d*"}}
    nodata: {NODATA:g}s
    severity: warning
    notify: ops
    message: "{{{{ device }}}} has sent nothing for {{{{ value | duration }}}}"
  - name: warm
    match: {{metric: temperature, device: "edge-*"}}
    above: 30
    clear_below: 25
    severity: warning
    notify: ops
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C"
"""


class Devices:
    """Devices that publish a reading every 0.25 s (QoS 1, source time in ts) until told to stop."""

    def __init__(self, broker: Mosquitto, names: list[str]) -> None:
        self.active = set(names)
        self.last: dict[str, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"devices-{free_port()}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="e2e-devices", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.25):
            with self.lock:
                for d in sorted(self.active):
                    ts = time.time()
                    self.client.publish(f"vigil/readings/{d}/t0", reading(4.0, ts), qos=1)
                    self.last[d] = ts

    def stop(self, device: str) -> float:
        """``device`` falls silent; returns the source time of its last reading."""
        with self.lock:
            self.active.discard(device)
            return self.last[device]

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def states(probe: MqttProbe, rule: str, device: str) -> list[dict[str, Any]]:
    return probe.alerts.get(f"{rule}/{device}/t0/temperature", [])


def fired(probe: MqttProbe, rule: str, device: str) -> list[dict[str, Any]]:
    return [s for s in states(probe, rule, device) if s.get("state") == "firing"]


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def only(hook: Hook, titles: list[str], settle: float = 3.0) -> None:
    """Exactly these notifications arrive, and nothing more within ``settle`` seconds."""
    want = Counter(titles)
    assert wait_until(lambda: hook.titles() == want, 30), hook.bodies
    sleep(settle)
    assert hook.titles() == want, hook.bodies


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook) -> Any:
    c = Chain(tmp_path, mosquitto, influxd, influx_db, hook, rules=rules(hook.url))
    c.start()
    yield c
    c.close()


@pytest.fixture
def probe(mosquitto: Mosquitto) -> Any:
    p = MqttProbe(mosquitto.port)
    yield p
    p.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_engine_away_longer_than_the_nodata_period_alerts_only_the_device_that_really_stopped(
        chain: Chain, mosquitto: Mosquitto, probe: MqttProbe, how: str) -> None:
    devices = Devices(mosquitto, ["d1", "d2", "d3"])
    try:
        sleep(2.0)
        chain.engine.stop() if how == "sigterm" else chain.engine.kill()
        sleep(1.0)
        gone = devices.stop("d3")  # d3 really stops while the engine is away; d1 and d2 keep sending
        sleep(NODATA + 3.0)  # the engine is away 8 s, twice the no-data period
        chain.engine.start()
        wait_connected(chain.engine, times=2)
        only(chain.hook, ["[FIRING warning] silent d3/t0/temperature"])
        (state,) = fired(probe, "silent", "d3")
        assert state["at"] == pytest.approx(gone + NODATA, abs=1e-3)  # the true time, on source time
        assert state["message"] == "d3 has sent nothing for 4s"
        assert states(probe, "silent", "d1") == [] and states(probe, "silent", "d2") == []
    finally:
        devices.close()


def test_sigkill_right_after_readings_were_acknowledged_loses_no_last_heard(
        chain: Chain, mosquitto: Mosquitto, probe: MqttProbe) -> None:
    """Before, "last heard" was written every 5 s and a reading acknowledged at once: a SIGKILL in between
    made the restarted engine fire up to 5 s early, saying the device had been silent for 4 s."""
    devices = Devices(mosquitto, ["d1", "d2"])
    try:
        sleep(5.5)  # past the first periodic write
        gone = devices.stop("d2")
        sleep(0.3)  # d2's last reading is acknowledged; the periodic write is seconds away
        chain.engine.kill()
        chain.engine.start()
        wait_connected(chain.engine, times=2)
        only(chain.hook, ["[FIRING warning] silent d2/t0/temperature"])
        (state,) = fired(probe, "silent", "d2")
        assert state["at"] == pytest.approx(gone + NODATA, abs=1e-3)
        assert state["message"] == "d2 has sent nothing for 4s"
    finally:
        devices.close()


def test_broker_away_longer_than_the_nodata_period_raises_no_storm(chain: Chain, mosquitto: Mosquitto) -> None:
    devices = Devices(mosquitto, ["d1", "d2", "d3"])
    try:
        sleep(2.0)
        mosquitto.stop()
        last_d3 = devices.stop("d3")  # d3 does not come back after the outage
        sleep(NODATA + 4.0)
        mosquitto.start()
        back = time.time()
        wait_connected(chain.engine, times=2)
        only(chain.hook, ["[FIRING warning] silent d3/t0/temperature"], settle=NODATA)
        probe = MqttProbe(mosquitto.port)  # a new subscription: the retained states as they are now
        assert wait_until(lambda: fired(probe, "silent", "d3"), 10)
        (state,) = fired(probe, "silent", "d3")
        # silence counts from when the engine heard again: fired one no-data period after that, telling
        # how long since d3 was last heard (the outage included)
        assert back + NODATA - 1 <= state["at"] <= back + NODATA + 10
        assert state["value"] == pytest.approx(state["at"] - last_d3, abs=1e-3)
        assert states(probe, "silent", "d1") == [] and states(probe, "silent", "d2") == []
        probe.close()
    finally:
        devices.close()


def test_an_edge_backlog_with_an_excursion_is_told_once_with_its_time_and_as_late(
        chain: Chain, mosquitto: Mosquitto, probe: MqttProbe) -> None:
    now = time.time()
    start = now - 3600  # an hour away, one reading a minute; warm from minute 20 to 24
    values = [5.0] * 20 + [35.0] * 5 + [5.0] * 35
    publish_many(mosquitto, [("vigil/readings/edge-1/t0", reading(v, start + 60 * i, seq=i))
                             for i, v in enumerate(values)])
    fire, end = "[FIRING warning] warm edge-1/t0/temperature", "[RESOLVED warning] warm edge-1/t0/temperature"

    def told() -> str:
        return "\n".join(chain.hook.texts())

    assert wait_until(lambda: fire in told() and end in told(), 30), chain.hook.bodies
    sleep(3.0)
    # once: one message with both (or, if delivery was quicker than the backlog, one each)
    assert len(chain.hook.bodies) <= 2 and told().count(fire) == 1 and told().count(end) == 1, chain.hook.bodies
    firing, resolved = (next(s for s in states(probe, "warm", "edge-1") if s["state"] == st)
                        for st in ("firing", "resolved"))
    assert firing["at"] == pytest.approx(start + 60 * 20, abs=1e-3)
    assert resolved["at"] == pytest.approx(start + 60 * 25, abs=1e-3)
    for s in (firing, resolved):
        assert s["reported"] >= now
        assert f"(reported late: it happened at {utc(s['at'])}, Vigil learned of it at " in s["message"]
    assert f"edge-1 is at 35.0 °C (reported late: it happened at {utc(start + 1200)}" in told()
    assert f"Fired for 5m, from {utc(start + 1200)} to {utc(start + 1500)}." in told()
    assert told().count("reported late") == 2



PIPELINE = "vigil-pipeline vigil/watchdog/pipeline"
# Mosquitto sends its clients' wills as it stops: every device's retained 'offline' reaches the engine just
# before its own connection drops. Without 'for' the offline rule fired for each; a status now settles first.
@pytest.mark.parametrize("offline_for", [0, 30])
def test_broker_away_with_offline_and_nodata_rules_raises_the_pipeline_alert_only(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook, offline_for: int) -> None:
    """Mosquitto stopped three no-data periods while three `vigil edge` agents (status topic, retained
    last will) keep measuring: the pipeline alert fires and resolves, once each; no device is told
    offline or silent (the agents say online again when the broker is back, and their backlog arrives).
    Then one agent really dies: it alone is told, once for each rule."""
    offline = (f"  - name: offline\n    offline: true\n    for: {offline_for}s\n    match: {{device: \"d*\"}}\n"
               "    severity: warning\n    notify: ops\n    message: \"{{ device }} is offline\"\n")
    chain = Chain(tmp_path, mosquitto, influxd, influx_db, hook, rules=rules(hook.url) + offline)
    config = tmp_path / "engine.yaml"
    # the agents reconnect within a few seconds of the broker (their backoff after 12 s away): a grace of
    # 15 s instead of the default minute keeps the test short
    config.write_text(yaml.safe_dump({"alerting": {"device_reconnect_grace": "15s", "watchdog": {
        "no_events": "10s", "bridge_offline": "2s", "broker_down": "3s", "clear_after": "2s"}}}))
    chain.engine.argv += ["-c", str(config)]
    heard = PersistentRecorder(mosquitto, "vigil/events/#", client_id="e2e-heard")
    devices = ["d1", "d2", "d3"]

    def heard_all() -> bool:
        with heard.lock:
            return {m.topic.split("/")[2] for m in heard.messages} >= set(devices)

    try:
        chain.start()
        for d in devices:
            chain.edge(d, base=4.0)
        assert wait_until(heard_all, 30)  # the engine has heard every device
        sleep(2.0)
        mosquitto.stop()
        sleep(3 * NODATA)
        mosquitto.start()
        wait_connected(chain.engine, times=2)
        pipeline = [f"[FIRING critical] {PIPELINE}", f"[RESOLVED critical] {PIPELINE}"]
        only(chain.hook, pipeline, settle=2 * NODATA)
        chain.kill_edge("d3")  # its last will: offline; its readings stop
        want = Counter([*pipeline, "[FIRING warning] offline d3/device/status",
                        "[FIRING warning] silent d3/t0/temperature"])
        assert wait_until(lambda: chain.hook.titles() == want, 30 + offline_for), chain.hook.bodies
        sleep(2 * NODATA)
        assert chain.hook.titles() == want, chain.hook.bodies
    finally:
        heard.close()
        chain.close()
