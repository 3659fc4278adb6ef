"""MQTT 5 -> 3.1.1 by itself when the broker does not speak 5; an explicit protocol is used as given.

The 3.1.1-only brokers: a real Mosquitto behind tests/support/mqtt311.py (which refuses
or ignores an MQTT 5 CONNECT, as 3.1.1 brokers do, amqtt among them). amqtt itself is no longer
installed: `vigil up` runs a real Mosquitto (tests/integration/vigil/app/ runs its printed edge command).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
from tests.support.edge import Agents, Recorder
from tests.support.mqtt311 import Mqtt311Front
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration

T0 = "vigil/readings/pi-1/t0"


def config(port: int, tmp_path: Path, protocol: str = "auto", connect_timeout: float = 10.0) -> EdgeConfig:
    return EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.2),),
                      MqttConfig(f"mqtt://127.0.0.1:{port}", protocol=protocol, reconnect_max=1.0,
                                 connect_timeout=connect_timeout),
                      BufferConfig(str(tmp_path / "q"), batch_interval=0.2))


def link_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edge.link" and r.levelno >= logging.INFO]


@pytest.fixture(params=["refuse", "silent"])
def front(request: pytest.FixtureRequest, mosquitto: Mosquitto) -> Iterator[Mqtt311Front]:
    f = Mqtt311Front(mosquitto.port, request.param)
    yield f
    f.close()


def test_the_edge_falls_back_to_311_says_so_once_and_delivers_everything(
        front: Mqtt311Front, recorder: Recorder, agents: Agents, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    agent = agents.start(config(front.port, tmp_path, connect_timeout=2.0))
    assert recorder.wait(lambda: len(recorder.on(T0)) >= 5, 20), link_lines(caplog)
    assert recorder.seqs(T0)[:5] == [0, 1, 2, 3, 4]
    assert front.v5_connects == 1 and front.v311_connects == 1
    why = ("it answered an MQTT 5 CONNECT with Unsupported protocol version" if front.on_v5 == "refuse"
           else "no answer to an MQTT 5 CONNECT within 2s")
    assert link_lines(caplog) == [
        f"connected to mqtt://127.0.0.1:{front.port} as vigil-edge-pi-1 (MQTT 3.1.1: the broker does not speak "
        f"MQTT 5, {why}; this agent stays with 3.1.1 until restarted; mqtt.protocol \"3.1.1\" skips the MQTT 5 try)"]
    agent.stop()
    agents.running.remove(agent)
    assert agent.queue is not None and agent.queue.depth == 0


def test_an_explicit_mqtt_5_is_honoured_and_the_refusal_says_what_to_set(
        mosquitto: Mosquitto, agents: Agents, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    front = Mqtt311Front(mosquitto.port, "refuse")
    try:
        agent = agents.start(config(front.port, tmp_path, protocol="5"))
        assert wait_until(lambda: front.v5_connects >= 2, 10)  # it retried, with MQTT 5 again
        assert front.v311_connects == 0 and not agent.connected
        assert link_lines(caplog)[0] == (
            f"the broker mqtt://127.0.0.1:{front.port} refused the connection: Unsupported protocol version (the "
            "broker does not speak MQTT 5: set mqtt.protocol to \"auto\" or \"3.1.1\"); retrying with backoff up "
            "to 1s")
        agent.stop()
        agents.running.remove(agent)
    finally:
        front.close()


def test_an_mqtt_5_broker_gets_mqtt_5(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    agents.start(config(mosquitto.port, tmp_path))
    assert recorder.wait(lambda: len(recorder.on(T0)) >= 1)
    assert link_lines(caplog) == [f"connected to mqtt://127.0.0.1:{mosquitto.port} as vigil-edge-pi-1 (MQTT 5)"]
