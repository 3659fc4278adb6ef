"""docs/production.md, section 7: a device's edge agent on the TLS listener under the shipped ACL.

The real `vigil edge` connects as its own user with the CA from make-certs.sh, and its readings
and its retained status arrive; an agent that calls itself by another device's name is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.mqttclient import Session
from tests.support.procs import VIGIL, VigilProcess
from tests.support.prodbroker import PASSWORDS, ProductionBroker
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def watcher(prod_broker: ProductionBroker) -> Iterator[Session]:
    s = Session(prod_broker.plain_port, "vigil-dashboard", PASSWORDS["vigil-dashboard"])
    assert not s.connect().is_failure
    s.subscribe("vigil/#")
    yield s
    s.close()


def edge(tmp_path: Path, broker: ProductionBroker, user: str, device: str) -> VigilProcess:
    """`vigil edge` as production.md configures a device: edge.yaml with the TLS URL and the CA."""
    conf = tmp_path / f"edge-{device}.yaml"
    conf.write_text(yaml.safe_dump({"mqtt": {"url": f"mqtts://{user}@127.0.0.1:{broker.tls_port}",
                                             "ca_file": str(broker.ca_file)}}))
    argv = [VIGIL, "edge", "-c", str(conf), "--device", device, "--simulate", "t0", "--interval", "0.2",
            "--buffer", str(tmp_path / f"buffer-{device}")]
    return VigilProcess(argv, tmp_path / f"edge-{device}.log", cwd=tmp_path,
                        env={"VIGIL_MQTT_PASSWORD": PASSWORDS[user]})


def test_edge_agent_publishes_over_tls_as_its_own_device(tmp_path: Path, prod_broker: ProductionBroker,
                                                         watcher: Session) -> None:
    agent = edge(tmp_path, prod_broker, "pi-1", "pi-1")
    try:
        reading = watcher.wait_for("vigil/readings/pi-1/t0", timeout=20)
        assert isinstance(json.loads(reading.payload)["value"], float)
        status = watcher.wait_for("vigil/status/pi-1", timeout=20)
        assert b"online" in status.payload
    finally:
        agent.stop()


def test_edge_agent_naming_another_device_gets_nothing_through(tmp_path: Path, prod_broker: ProductionBroker,
                                                               watcher: Session) -> None:
    agent = edge(tmp_path, prod_broker, "pi-1", "pi-2")  # pi-1's credentials, pi-2's name
    try:
        assert wait_until(lambda: "Not authorized" in agent.output(), timeout=20), agent.output()[-2000:]
        watcher.pump_for(2.0)
        assert [t for t in watcher.received_topics() if "pi-2" in t] == []
    finally:
        agent.stop()
    # What the person at the device reads in its log.
    assert "the MQTT username must be the device id, pi-2" in agent.output()
