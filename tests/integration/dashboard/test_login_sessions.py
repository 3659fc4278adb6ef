"""Logins behind a reverse proxy, concurrent guessing, logout and signed-request replays, on the real dashboard.

The dashboard listens on 127.0.0.1; a client bound to 127.0.0.2 (also loopback on Linux) plays a
caller that is not the trusted proxy.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest

from dashboard.auth import SESSION_COOKIE, sign_request
from tests.support.dashboard_served import ADMIN_PW, HMAC_SECRET, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.app.config import VigilConfig
from vigil.core.stores import Store, open_store

pytestmark = pytest.mark.integration

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def config(mosquitto: Mosquitto, tmp_path: Path) -> VigilConfig:
    base = make_config(mosquitto, f"sqlite:///{tmp_path}/vigil.db", tmp_path)
    dashboard = base.dashboard.model_copy(update={"trusted_proxies": [ip_network("127.0.0.1/32")],
                                                  "login_attempts": 5, "login_window": 600.0})
    return base.model_copy(update={"dashboard": dashboard})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/vigil.db")
    yield s
    s.close()


def client(base: str, local: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=local))


async def login(c: httpx.AsyncClient, user: str, password: str, forwarded: str | None = None) -> int:
    headers = {**FORM, **({"X-Forwarded-For": forwarded} if forwarded else {})}
    r = await c.post("/login", content=f"username={user}&password={password.replace(' ', '+')}", headers=headers)
    return r.status_code


async def test_behind_the_proxy_each_client_has_its_own_limit(config: VigilConfig, store: Store) -> None:
    async with running_dashboard(config, store) as run, client(run.base) as proxy, \
            client(run.base, "127.0.0.2") as direct:
        # A caller that is not a trusted proxy cannot pick its address with the header.
        codes = [await login(direct, "mallory", "guess", forwarded=f"192.0.2.{i}") for i in range(6)]
        assert codes == [401] * 5 + [429]
        # Through the proxy: five wrong passwords from one client (different user names) ...
        codes = [await login(proxy, f"eve{i}", "guess", forwarded="203.0.113.5") for i in range(6)]
        assert codes == [401] * 5 + [429]
        # ... whatever it writes left of what the proxy appended,
        assert await login(proxy, "eve9", "guess", forwarded="198.51.100.7, 203.0.113.5") == 429
        # ... and everyone else behind the same proxy still logs in.
        assert await login(proxy, "admin", ADMIN_PW, forwarded="198.51.100.7") == 303


async def test_concurrent_guesses_are_checked_at_most_the_limit(config: VigilConfig, store: Store) -> None:
    async with running_dashboard(config, store) as run, client(run.base) as c:
        codes = await asyncio.gather(*(login(c, "admin", f"wrong {i}", forwarded="203.0.113.9")
                                       for i in range(20)))
        assert sorted(codes).count(401) <= 5 and set(codes) <= {401, 429}, codes
        assert codes.count(401) == 5, f"the limit lets exactly 5 tries through: {codes}"
        # the user is locked too, from any address, until the window has passed
        assert await login(c, "admin", ADMIN_PW, forwarded="198.51.100.1") == 429


async def test_a_logged_out_cookie_is_refused_also_after_a_restart(config: VigilConfig, store: Store) -> None:
    async with running_dashboard(config, store) as run:
        async with run.client() as c:
            csrf = await run.login(c)
            cookie = c.cookies[SESSION_COOKIE]
            assert (await c.get("/api/v1/latest")).status_code == 200
            r = await c.post("/logout", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 204
        async with run.client() as replay:
            replay.cookies.set(SESSION_COOKIE, cookie)
            r = await replay.get("/api/v1/latest")
            assert r.status_code == 401 and "logged out" in r.json()["error"]
    async with running_dashboard(config, store) as run, run.client() as replay:
        replay.cookies.set(SESSION_COOKIE, cookie)
        r = await replay.get("/api/v1/latest")
        assert r.status_code == 401 and "logged out" in r.json()["error"]
        # another session of the same user is not affected
        await run.login(replay)
        assert (await replay.get("/api/v1/latest")).status_code == 200


async def test_a_signed_request_replayed_after_a_restart_is_refused(config: VigilConfig, store: Store) -> None:
    body = json.dumps({"value": -18.5, "ts": time.time(), "unit": "°C", "seq": 1}).encode()
    path = "/api/v1/readings?device=freezer&sensor=t0"
    ts = int(time.time())
    headers = {"X-Vigil-Key": "plc", "X-Vigil-Timestamp": str(ts), "Content-Type": "application/json",
               "X-Vigil-Signature": sign_request(HMAC_SECRET, ts, path, body)}
    async with running_dashboard(config, store) as run, run.client() as c:
        assert (await c.post(path, content=body, headers=headers)).status_code == 202
        r = await c.post(path, content=body, headers=headers)
        assert r.status_code == 401 and "replay" in r.json()["error"]
    async with running_dashboard(config, store) as run, run.client() as c:
        r = await c.post(path, content=body, headers=headers)
        assert r.status_code == 401 and "replay" in r.json()["error"], r.text
        fresh = {**headers, "X-Vigil-Timestamp": str(ts + 1),
                 "X-Vigil-Signature": sign_request(HMAC_SECRET, ts + 1, path, body)}
        assert (await c.post(path, content=body, headers=fresh)).status_code == 202
    assert (Path(config.data_dir) / "dashboard-auth.db").exists()
