"""Calibration under the shipped broker configuration: the dashboard's account publishes a calibration, the
bridge's account takes it; with a vigil.acl of before issue 16 the bridge runs on without calibrations from MQTT
(Mosquitto 2.0 grants the subscription and delivers nothing: the change never reaches the history)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.bridge import VIGIL, BridgeProcess, reading
from tests.support.prodbroker import PASSWORDS, ProductionBroker
from tests.support.services import wait_until
from vigil.core.event import SeriesKey
from vigil.core.stores import open_store

SERIES = SeriesKey("temperature", "pi-1", "t0")


def url(broker: ProductionBroker, user: str) -> str:
    return f"mqtt://{user}:{PASSWORDS[user]}@127.0.0.1:{broker.plain_port}"


def _bridge(broker: ProductionBroker, tmp_path: Path) -> BridgeProcess:
    return BridgeProcess(broker.mosquitto, f"sqlite:///{tmp_path}/vigil.db", tmp_path / "data",
                         extra=["--broker", url(broker, "vigil-bridge")])


def _publish_as_device(broker: ProductionBroker, payload: bytes) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pi-1", protocol=mqtt.MQTTv5)
    c.username_pw_set("pi-1", PASSWORDS["pi-1"])
    c.connect("127.0.0.1", broker.plain_port)
    c.loop_start()
    c.publish("vigil/readings/pi-1/t0", payload, qos=1).wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


def test_the_dashboard_account_sets_and_the_bridge_account_takes_it(prod_broker: ProductionBroker,
                                                                    tmp_path: Path) -> None:
    bridge = _bridge(prod_broker, tmp_path)
    bridge.start()
    try:
        done = subprocess.run([VIGIL, "calibration", "set", "pi-1/t0/temperature", "--offset", "-0.5", "--by", "ops",
                               "--broker", url(prod_broker, "vigil-dashboard"), "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        journal = tmp_path / "data" / "bridge-calibration.jsonl"
        assert wait_until(lambda: "ops" in journal.read_text(), 10), bridge.log.read_text()
        now = time.time()
        _publish_as_device(prod_broker, reading(4.5, now, seq=1))
        with open_store(f"sqlite:///{tmp_path}/vigil.db") as store:
            assert wait_until(lambda: bool(store.query(SERIES, now - 1, now + 1)), 10), bridge.log.read_text()
            assert [p.value for p in store.query(SERIES, now - 1, now + 1)] == [4.0]
        # a device may not calibrate itself: the broker refuses its publish, the calibration stays
        done = subprocess.run([VIGIL, "calibration", "clear", "pi-1/t0/temperature", "--by", "pi",
                               "--broker", url(prod_broker, "pi-1"), "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "refused the change (Not authorized)" in done.stderr, done.stderr
        time.sleep(0.5)
        assert '"by":"pi"' not in journal.read_text()
    finally:
        bridge.stop()
    assert "refused the subscription" not in bridge.log.read_text()


def test_with_an_acl_of_before_the_bridge_runs_on_without_them(prod_broker: ProductionBroker,
                                                               tmp_path: Path) -> None:
    acl = prod_broker.mosquitto.conf_file.parent / "vigil.acl"  # type: ignore[union-attr]
    text = acl.read_text()
    assert "topic read vigil/calibration/#\n" in text
    acl.write_text(text.replace("topic read vigil/calibration/#\n", ""))
    prod_broker.mosquitto.stop()
    prod_broker.mosquitto.start()
    bridge = _bridge(prod_broker, tmp_path)
    bridge.start()
    try:
        done = subprocess.run([VIGIL, "calibration", "set", "pi-1/t0/temperature", "--offset", "-0.5", "--by", "ops",
                               "--broker", url(prod_broker, "vigil-dashboard"), "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        now = time.time()
        _publish_as_device(prod_broker, reading(4.5, now, seq=2))
        with open_store(f"sqlite:///{tmp_path}/vigil.db") as store:
            assert wait_until(lambda: bool(store.query(SERIES, now - 1, now + 1)), 10), bridge.log.read_text()
            assert [p.value for p in store.query(SERIES, now - 1, now + 1)] == [4.5]
    finally:
        bridge.stop()
        acl.write_text(text)
    assert (tmp_path / "data" / "bridge-calibration.jsonl").read_text() == ""
    assert "Traceback" not in bridge.log.read_text()
