"""Fixtures of the dashboard's unit tests: the app over in-memory parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dashboard.live import LiveState
from tests.support.dashboard_app import NOW, Harness, RecordingPublisher, make_config
from vigil.app.dashboard_wiring import create_dashboard
from vigil.core.clock import ManualClock
from vigil.core.stores import MemoryStore


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = make_config(tmp_path)
    store = MemoryStore()
    publisher = RecordingPublisher()
    clock = ManualClock(NOW)
    live = LiveState(config.mqtt.topics)
    app = create_dashboard(config, store=store, publisher=publisher, live=live, clock=clock)
    transport = httpx.ASGITransport(app=app)  # which runs no lifespan: run it here, as uvicorn does
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Harness(client, store, publisher, live, clock, config)
