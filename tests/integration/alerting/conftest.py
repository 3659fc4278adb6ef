"""Fixtures of the rule engine's integration tests (and, below, the notification side's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, pings, receiver
from tests.support.services import free_port

__all__ = ["pings", "receiver"]  # fixtures of tests/support, offered to this folder


@pytest.fixture(scope="session", autouse=True)
def apprise_pools_started() -> Iterator[None]:
    """Apprise keeps process-wide thread pools after a call; start them before the leftover checks count."""
    import apprise

    ap = apprise.Apprise()
    for _ in range(12):
        ap.add(f"json://127.0.0.1:{free_port()}/warm-up")
    ap.notify(body="warm-up", title="warm-up")
    yield


@pytest.fixture
def probe(mosquitto: Any) -> Iterator[MqttProbe]:
    p = MqttProbe(mosquitto.port)
    yield p
    p.close()


@pytest.fixture
def engine_process(tmp_path: Path) -> Iterator[Callable[[list[str]], EngineProcess]]:
    made: list[EngineProcess] = []

    def make(argv: list[str]) -> EngineProcess:
        p = EngineProcess(argv, tmp_path / f"engine-{len(made)}.log")
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
