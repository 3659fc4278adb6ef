"""Readings, birth and last will against a private Mosquitto."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import jsonschema
import paho
import pytest
import yaml

from edge import BufferConfig, EdgeConfig, Fault, HomeAssistantConfig, MqttConfig, simulated_sensor
from tests.support.edge import Agents, Recorder, retained
from tests.support.services import Mosquitto
from vigil.core.reading import parse_reading, reading_schema

pytestmark = pytest.mark.integration


def config(broker: Mosquitto, tmp_path: Path, protocol: str = "5", **kw: object) -> EdgeConfig:
    sensors = (simulated_sensor("t0", interval=0.2), simulated_sensor("rh", metric="humidity", unit="%",
                                                                     base=45, interval=0.2))
    return EdgeConfig("pi-1", sensors, MqttConfig(broker.url, protocol=protocol),
                      BufferConfig(str(tmp_path / "q"), batch_interval=0.2), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_arrive_on_their_topics_and_follow_the_schema(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path, protocol: str) -> None:
    agents.start(config(mosquitto, tmp_path, protocol))
    t0, rh = "vigil/readings/pi-1/t0", "vigil/readings/pi-1/rh"
    assert recorder.wait(lambda: len(recorder.on(t0)) >= 5 and len(recorder.on(rh)) >= 5)
    validator = jsonschema.Draft202012Validator(reading_schema())
    for msg in recorder.on(t0) + recorder.on(rh):
        validator.validate(msg.json())
        parse_reading(msg.payload)
    assert recorder.seqs(t0)[:5] == [0, 1, 2, 3, 4]
    assert {m.json()["metric"] for m in recorder.on(rh)} == {"humidity"}
    assert all(not m.retain for m in recorder.on(t0))


def test_the_command_line_of_the_issue_works_as_written(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    buffer = tmp_path / "var-lib-vigil-edge"
    proc = agents.spawn(None, "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--device", "pi-1",
                        "--simulate", "t0", "--interval", "1", "--buffer", str(buffer))
    assert recorder.wait(lambda: len(recorder.on("vigil/readings/pi-1/t0")) >= 2, 10), agents.log(0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert (buffer / "queue.db").exists()
    assert "connected to mqtt://127.0.0.1" in agents.log(0)


def test_birth_is_retained_with_details_and_a_clean_stop_says_offline(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    agent = agents.start(config(mosquitto, tmp_path, homeassistant=HomeAssistantConfig(True)))
    assert recorder.wait(lambda: agent.connected and len(recorder.on("vigil/readings/pi-1/t0")) >= 1)
    birth = retained(mosquitto, "vigil/status/pi-1")
    assert birth is not None and birth.retain
    body = birth.json()
    assert body["state"] == "online" and body["version"] and body["interval"] == 10.0
    assert [s["name"] for s in body["sensors"]] == ["t0", "rh"] and body["sensors"][0]["interval"] == 0.2
    assert set(body["buffer"]) >= {"depth", "dropped", "max_readings"}
    discovery = retained(mosquitto, "homeassistant/sensor/vigil_pi-1/t0/config")
    assert discovery is not None and json.loads(discovery.payload)["state_topic"] == "vigil/readings/pi-1/t0"
    agent.stop()
    agents.running.remove(agent)
    last = retained(mosquitto, "vigil/status/pi-1")
    assert last is not None and last.json()["state"] == "offline"


def test_read_errors_are_reported_in_the_status_and_never_published(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    broken = simulated_sensor("broken", interval=0.1, faults=[Fault("dropout", at=0)])
    config = EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.2), broken), MqttConfig(mosquitto.url),
                        BufferConfig(str(tmp_path / "q"), batch_interval=0.2))
    agents.start(config)

    def status_has_errors() -> bool:
        msgs = recorder.on("vigil/status/pi-1")
        return bool(msgs) and msgs[-1].json()["sensors"][1]["errors"] >= 5

    assert recorder.wait(status_has_errors, 10)
    sensor = recorder.on("vigil/status/pi-1")[-1].json()["sensors"][1]
    assert sensor["name"] == "broken" and set(sensor["error_reasons"]) == {"dropout"}
    assert "simulated dropout" in sensor["last_error"] and sensor["readings"] == 0
    assert recorder.on("vigil/readings/pi-1/broken") == [] and recorder.on("vigil/readings/pi-1/t0")


def test_the_last_will_is_seen_when_the_agent_is_killed(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    proc = agents.spawn({"device": "pi-9", "mqtt": {"url": mosquitto.url, "keepalive": 5},
                         "buffer": {"path": str(tmp_path / "q")},
                         "sensors": [{"name": "t0", "type": "simulated", "interval": 0.2}]})
    assert recorder.wait(lambda: any(m.json()["state"] == "online" for m in recorder.on("vigil/status/pi-9")))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert recorder.wait(lambda: recorder.on("vigil/status/pi-9")[-1].json()["state"] == "offline")
    will = retained(mosquitto, "vigil/status/pi-9")
    assert will is not None and will.retain and will.json() == {"state": "offline", "device": "pi-9",
                                                                 "reason": "connection lost"}


PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")


@pytest.mark.skipif(not PY39.exists(), reason=f"{PY39} is not installed here")
def test_the_agent_delivers_under_python_3_9(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    # paho-mqtt is pure Python and PyYAML falls back to its pure-Python loader: link them in.
    libs = tmp_path / "lib"
    libs.mkdir()
    (libs / "paho").symlink_to(Path(paho.__path__[0]))
    (libs / "yaml").symlink_to(Path(yaml.__file__).parent)
    proc = agents.spawn({"device": "pi-39", "mqtt": {"url": mosquitto.url}, "buffer": {"path": str(tmp_path / "q")},
                         "sensors": [{"name": "t0", "type": "simulated", "interval": 0.2}]},
                        python=str(PY39), pythonpath=str(libs))
    assert recorder.wait(lambda: len(recorder.on("vigil/readings/pi-39/t0")) >= 5), agents.log(0)
    assert recorder.seqs("vigil/readings/pi-39/t0")[:5] == [0, 1, 2, 3, 4]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert retained(mosquitto, "vigil/status/pi-39").json()["state"] == "offline"  # type: ignore[union-attr]
