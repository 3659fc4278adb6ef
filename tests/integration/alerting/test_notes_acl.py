"""Notes under the shipped broker configuration (deploy/mosquitto/vigil.acl): the dashboard's account writes
``vigil/notes/...`` and the rule engine's account reads it; a device's account may not write notes, and the
rule engine's may not forge them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mqttclient import NOT_AUTHORIZED, Session
from tests.support.prodbroker import PASSWORDS, ProductionBroker, start_production_broker

pytestmark = pytest.mark.integration

TOPIC = "vigil/notes/freezer-warm/pi-1/t0/temperature"
NOTE = b'{"id": "n1", "by": "ana", "text": "door shut"}'


@pytest.fixture(scope="module")
def broker() -> Iterator[ProductionBroker]:
    for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here (bash deploy/setup.sh --dev installs Mosquitto)")
    workdir = Path(tempfile.mkdtemp(prefix="vigil-notes-acl-"))
    workdir.chmod(0o755)  # Mosquitto started as root reads its files as the mosquitto user
    try:
        b = start_production_broker(workdir)
        yield b
        b.mosquitto.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _login(broker: ProductionBroker, user: str) -> Session:
    s = Session(broker.plain_port, user, PASSWORDS[user], client_id=user)
    assert not s.connect().is_failure
    return s


def test_the_dashboard_writes_notes_and_the_rule_engine_reads_them(broker: ProductionBroker) -> None:
    engine = _login(broker, "vigil-alerting")
    engine.subscribe("vigil/notes/#")
    dashboard = _login(broker, "vigil-dashboard")
    device = _login(broker, "pi-1")
    try:
        assert device.publish(TOPIC, b'{"id": "x", "by": "pi", "text": "forged"}').value == NOT_AUTHORIZED
        assert engine.publish(TOPIC, b'{"id": "y", "by": "engine", "text": "forged"}').value == NOT_AUTHORIZED
        assert not dashboard.publish(TOPIC, NOTE).is_failure
        assert engine.wait_for(TOPIC).payload == NOTE
        engine.pump_for(0.3)
        assert engine.received_topics() == [TOPIC]  # only the dashboard's note arrived
    finally:
        for s in (engine, dashboard, device):
            s.close()
