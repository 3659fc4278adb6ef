from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dispatcher import Harness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "alerts.db")
    yield harness
    harness.close()
