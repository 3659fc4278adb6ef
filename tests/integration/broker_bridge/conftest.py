"""Fixtures of the bridge's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.bridge import Recorder
from tests.support.services import Mosquitto


@pytest.fixture
def recorder_factory(mosquitto: Mosquitto) -> Iterator[Any]:
    made: list[Recorder] = []

    def make(topic_filter: str) -> Recorder:
        r = Recorder(mosquitto, topic_filter)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
