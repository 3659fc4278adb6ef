"""Fixtures for the deployment tests: Mosquitto with the shipped production configuration."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.failover import record_queued
from tests.support.mqttclient import Session
from tests.support.procs import Receiver
from tests.support.prodbroker import PASSWORDS, ProductionBroker, start_production_broker


@pytest.fixture(scope="module")
def prod_broker() -> Iterator[ProductionBroker]:
    """One Mosquitto per test module, configured by deploy/mosquitto/ (ACL, passwords, TLS)."""
    for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here (bash deploy/setup.sh --dev installs Mosquitto)")
    # Not pytest's tmp_path: its parent is private to us, and Mosquitto started as root reads
    # its files as the mosquitto user, as in production.
    workdir = Path(tempfile.mkdtemp(prefix="vigil-prod-mosquitto-"))
    workdir.chmod(0o755)
    try:
        broker = start_production_broker(workdir)
        yield broker
        broker.mosquitto.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def login(prod_broker: ProductionBroker) -> Iterator[object]:
    """``login(user)`` -> a connected Session as that user (closed after the test).

    The shipped configuration makes the username the client id, so an account is one client: a
    second connection would replace the first. Logging in again as a user who is still
    connected (without a will) returns that user's session.
    """
    sessions: list[Session] = []

    def connect(user: str, *, will: tuple[str, bytes] | None = None) -> Session:
        if will is None:
            for open_session in sessions:
                if open_session.username == user and open_session.will is None and not open_session.gone:
                    return open_session
        s = Session(prod_broker.plain_port, user, PASSWORDS[user], will=will)
        sessions.append(s)
        reason = s.connect()
        assert not reason.is_failure, f"{user} could not connect: {reason}"
        return s

    yield connect
    for s in sessions:
        s.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver for apprise json:// notifications (closed after the test)."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, int]]:
    """Every reading an edge agent of this test queues, as (sensor, time in ms): tests.support.failover."""
    return record_queued(monkeypatch)
