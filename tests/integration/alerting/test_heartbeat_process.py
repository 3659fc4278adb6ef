"""The heartbeat and the pipeline alert through the real `vigil alerting` process and a private Mosquitto:
it pings a local push URL while the pipeline is healthy, stops while a bridge's health says offline
(the pipeline alert fires once at the receiver), and pings again once it resolved."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.alerting import EngineProcess, MqttProbe, Pings, Receiver, wait_for
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

HEALTH = "vigil/health/bridge/b1"


def test_heartbeat_pings_while_healthy_and_stops_while_the_pipeline_is_stalled(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver, pings: Pings,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(f'receivers:\n  ops: ["{receiver.url}"]\n'
                                         "grouping: {group_wait: 0s, group_interval: 1s}\nrules: []\n")
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump({"alerting": {
        "heartbeat": {"url": pings.url, "every": "300ms", "timeout": "2s"},
        "watchdog": {"bridge_offline": "1s", "clear_after": "1s"}}}))
    probe.raw(HEALTH, json.dumps({"state": "ok", "every": 10}), retain=True)
    engine = engine_process(["alerting", "-c", str(tmp_path / "vigil.yaml"), "--broker", mosquitto.url,
                             "--rules", str(tmp_path / "rules.yaml"), "--state", str(tmp_path / "alerts.db")])
    engine.start()
    wait_for(lambda: len(pings.paths) >= 3, 30, "pings while healthy")
    assert set(pings.paths) == {"/ping/secret-uuid"}
    probe.raw(HEALTH, b'{"state": "offline"}', retain=True)
    wait_for(lambda: [b.get("title") for b in receiver.bodies] ==
             ["[FIRING critical] vigil-pipeline vigil/watchdog/pipeline"], 20, "the pipeline alert")
    assert "the bridge b1 is offline since" in receiver.bodies[0]["message"]
    time.sleep(0.5)  # a ping already on its way
    stalled = len(pings.paths)
    time.sleep(1.5)
    assert len(pings.paths) == stalled, "it pinged while the pipeline was stalled"
    probe.raw(HEALTH, json.dumps({"state": "ok", "every": 10}), retain=True)
    wait_for(lambda: len(receiver.bodies) == 2, 20, "the pipeline alert to resolve")
    assert receiver.bodies[1]["title"].startswith("[RESOLVED")
    wait_for(lambda: len(pings.paths) >= stalled + 2, 20, "pings again")
    assert "secret-uuid" not in engine.output()
