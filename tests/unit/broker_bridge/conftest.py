"""Fixtures of the bridge's unit tests."""

from __future__ import annotations

import pytest

from broker_bridge.pipeline import Pipeline
from tests.support.pipeline import make_pipeline


@pytest.fixture
def pipeline() -> Pipeline:
    return make_pipeline()
