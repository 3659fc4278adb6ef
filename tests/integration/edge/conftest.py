"""Fixtures of the edge agent's integration tests: a recording subscriber and agents to run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.edge import Agents, Recorder
from tests.support.services import Mosquitto


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(mosquitto)
    yield rec
    rec.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    a = Agents(tmp_path)
    yield a
    a.close()
