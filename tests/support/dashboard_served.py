"""A real dashboard: ``serve()`` with uvicorn on a free port, the private Mosquitto, a real store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from dashboard.app import serve
from dashboard.passwords import hash_password
from tests.services import Influxd, Mosquitto, free_port
from vigil.app.config import VigilConfig
from vigil.core.stores import Store, open_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ADMIN_PW = "integration admin pw"
TOKEN = "integration-ingest-token-1"
HMAC_SECRET = "integration-hmac-secret-1"
_HASH: dict[str, str] = {}


def make_config(mosquitto: Mosquitto, store_url: str, tmp_path: Path) -> VigilConfig:
    if "h" not in _HASH:
        _HASH["h"] = hash_password(ADMIN_PW)
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    return VigilConfig.model_validate({
        "data_dir": str(tmp_path / "vigil-data"),
        "mqtt": {"url": mosquitto.url},
        "store": {"url": store_url},
        "dashboard": {
            "listen": f"127.0.0.1:{free_port()}",
            "users": [{"name": "admin", "password_hash": _HASH["h"], "role": "admin"}],
            "tokens": [{"name": "hook", "token": TOKEN, "role": "ingest"}],
            "hmac_keys": [{"id": "plc", "secret": HMAC_SECRET}],
            "session_secret": "integration-session-secret",
            "rules": str(tmp_path / "rules.yaml"),
        },
    })


@dataclass
class Running:
    base: str
    config: VigilConfig
    store: Store

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=10)

    async def login(self, client: httpx.AsyncClient) -> str:
        r = await client.post("/login", data={"username": "admin", "password": ADMIN_PW})
        assert r.status_code == 303, r.text
        page = await client.get("/")
        return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@asynccontextmanager
async def running_dashboard(config: VigilConfig, store: Store, **options: Any) -> AsyncIterator[Running]:
    """Serve until the block ends; waits until the dashboard is connected to the broker."""
    ready = asyncio.Event()
    task = asyncio.create_task(serve(config, store=store, ready=ready, **options), name="test-dashboard")
    try:
        await asyncio.wait_for(ready.wait(), 15)
        run = Running(f"http://{config.dashboard.listen}", config, store)
        async with run.client() as c:
            for _ in range(200):
                if (await c.get("/api/v1/health")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
        yield run
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(params=["sqlite", "influxdb1"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each test runs against the SQLite file store and the private influxd."""
    if request.param == "influxdb1":
        influxd: Influxd = request.getfixturevalue("influxd")
        db = request.getfixturevalue("influx_db")
        s = open_store(influxd.url(db))
    else:
        s = open_store(f"sqlite:///{tmp_path}/vigil.db")
    yield s
    s.close()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` without blocking the event loop (tests.services.wait_until would)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@asynccontextmanager
async def listener(mosquitto: Mosquitto, topic_filter: str) -> AsyncIterator[list[tuple[str, Any]]]:
    """Collect (topic, decoded payload) of everything published on ``topic_filter``."""
    got: list[tuple[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-listener") as client:
        await client.subscribe(topic_filter, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                raw = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                got.append((m.topic.value, json.loads(raw) if raw else None))

        task = asyncio.create_task(collect(), name="test-listener")
        try:
            yield got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()
