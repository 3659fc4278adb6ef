"""A real dashboard: ``serve_dashboard()`` with uvicorn on a free port, the private Mosquitto, a real store; and a
headless Chromium's page logged in to it."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from playwright.async_api import Browser, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from dashboard.passwords import hash_password
from tests.support import ROOT
from tests.support.services import Mosquitto, free_port
from vigil.app.config import VigilConfig
from vigil.app.dashboard_wiring import serve_dashboard
from vigil.core.event import Event
from vigil.core.stores import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ADMIN_PW = "integration admin pw"
TOKEN = "integration-ingest-token-1"
HMAC_SECRET = "integration-hmac-secret-1"
ARTIFACTS = ROOT / "tests" / "artifacts"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
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
    task = asyncio.create_task(serve_dashboard(config, store=store, ready=ready, **options), name="test-dashboard")
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


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` without blocking the event loop (tests.support.services.wait_until would)."""
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


def history(now: float) -> list[Event]:
    out = []
    for i in range(24 * 60):
        ts = now - 86400 + i * 60
        out.append(Event("freezer", "t0", "temperature", -18 + 2 * math.sin(i / 90), ts, "°C",
                         labels=(("site", "kitchen"),)))
        out.append(Event("freezer", "door", "humidity", 40 + 5 * math.cos(i / 60), ts, "%",
                         labels=(("site", "kitchen"),)))
        out.append(Event("greenhouse", "air", "temperature", 22 + 4 * math.sin(i / 200), ts, "°C",
                         labels=(("site", "garden"),)))
    return out


async def logged_in(browser: Browser, run: Running, viewport: dict[str, int] = DESKTOP,
                    dark: bool = False, bypass_csp: bool = False) -> Page:
    """A logged-in admin's page; ``bypass_csp`` lets a test inject a script (axe-core) past script-src 'self'."""
    ctx = await browser.new_context(viewport=viewport, color_scheme="dark" if dark else "light",  # type: ignore[arg-type]
                                    bypass_csp=bypass_csp)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(run.base + "/")
    assert "/login" in page.url
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", ADMIN_PW)
    await page.click("button[type=submit]")
    try:
        await page.wait_for_selector("body[data-ready=yes]", timeout=15000)
    except PlaywrightTimeout:
        raise AssertionError(f"the page did not get ready; script errors: {errors}") from None
    return page


async def publish(mosquitto: Mosquitto, topic: str, payload: bytes | str, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        await c.publish(topic, payload, qos=1, retain=retain)


def tile(series: str) -> str:
    return f'a.tile[data-series="{series}"]'


CANVAS_INK = """() => {
  const c = document.querySelector('#chart canvas');
  if (!c) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""
