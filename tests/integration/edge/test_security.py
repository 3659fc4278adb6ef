"""Username/password and TLS (with a client certificate) against a private Mosquitto."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
from tests.support.edge import Agents
from tests.support.services import Mosquitto, wait_until
from tests.support.tls import broker_with, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "pi", "right"], check=True)
    broker = broker_with(tmp_path, f"allow_anonymous false\npassword_file {passwords}\n")
    yield broker
    broker.stop()


def config(url: str, tmp_path: Path, **mqtt: object) -> EdgeConfig:
    return EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.2),),
                      MqttConfig(url, reconnect_min=0.1, reconnect_max=0.4, **mqtt),  # type: ignore[arg-type]
                      BufferConfig(str(tmp_path / "q"), batch_interval=0.2))


def test_a_bad_password_gives_one_clear_error_line_and_backoff_not_a_crash(
        password_broker: Mosquitto, agents: Agents, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="edge"):
        agent = agents.start(config(password_broker.url, tmp_path / "a", username="pi", password="wrong"))
        time.sleep(3)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    assert "refused the connection" in errors[0] and "mqtt.password" in errors[0]
    assert "wrong" not in errors[0]
    attempts = [r for r in caplog.records if r.levelno == logging.DEBUG and "refused" in r.getMessage()]
    assert 3 <= len(attempts) <= 30  # it kept trying, with backoff
    assert agent.failure is None and not agent.connected and agent.queue is not None and agent.queue.depth > 5
    good = agents.start(config(password_broker.url, tmp_path / "b", username="pi", password="right",
                               client_id="good"))
    assert wait_until(lambda: good.connected, 5)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    broker = broker_with(tmp_path, f"allow_anonymous true\ncafile {pki}/ca.pem\ncertfile {pki}/server.pem\n"
                                   f"keyfile {pki}/server.key\nrequire_certificate true\n")
    yield broker, pki
    broker.stop()


def test_tls_with_a_ca_and_a_client_certificate(tls_broker: tuple[Mosquitto, Path], agents: Agents,
                                                tmp_path: Path) -> None:
    broker, pki = tls_broker
    url = f"mqtts://127.0.0.1:{broker.port}"
    agent = agents.start(config(url, tmp_path, ca_file=str(pki / "ca.pem"), cert_file=str(pki / "client.pem"),
                                key_file=str(pki / "client.key")))
    assert wait_until(lambda: agent.connected and agent.forwarder is not None and agent.forwarder.sent >= 3, 10)


def test_a_broker_certificate_from_an_unknown_ca_is_one_clear_line(
        tls_broker: tuple[Mosquitto, Path], agents: Agents, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker, _ = tls_broker
    with caplog.at_level(logging.WARNING, logger="edge"):
        agent = agents.start(config(f"mqtts://127.0.0.1:{broker.port}", tmp_path))  # the system's CAs only
        time.sleep(2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "CERTIFICATE_VERIFY_FAILED" in lines[0], lines
    assert agent.failure is None and not agent.connected
