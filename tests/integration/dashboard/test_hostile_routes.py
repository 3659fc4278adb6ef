"""Every route of the real dashboard (uvicorn, private Mosquitto, SQLite) with hostile input, by every kind of caller.

Nothing hostile gets a 5xx: a body too large is refused before it is read (413), one nested too deeply
before it is parsed (400), a bad query or body value gets a 4xx with a sentence.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from dashboard import acklinks, actions, api, fleet, oncall, pages, reports
from tests.support.dashboard_served import TOKEN, Running, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.stores import Store

pytestmark = pytest.mark.integration

ROUTERS = (api.router, actions.router, pages.router, fleet.router, acklinks.router, oncall.router, reports.router)
ROUTES = [(method, r.path) for router in ROUTERS for r in router.routes
          if isinstance(r, APIRoute) for method in sorted(r.methods) if r.path != "/api/v1/live"]
SEGMENTS = ["..%2F..%2Fetc%2Fpasswd", "%00", "ü" * 50 + "1e999" + "a" * 2000]
QUERY = {"bucket": "inf", "start": "9" * 400, "end": "1e400", "range": "-1h", "points": "9" * 400, "hours": "nan",
         "limit": "9" * 400, "device": "\x00", "sensor": "a" * 5000, "metric": "#", "aggregate": "%27",
         "format": "nosuchformat", "topic": "#", "next": "//evil.example", "name": "../../etc/passwd"}
BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"value": ' + b"1" * 400 + b', "ts": 1700000000, "unit": "C", "file": "rules.yaml", "text": 1}',
    b'{"value": 1e999, "ts": 1e999, "unit": "C", "matchers": {"a": 1e999}, "duration": "9999999999d"}',
    b'{"file": "rules.yaml", "text": "' + b"\\u0000" * 1000 + b'", "comment": ' + b"9" * 400 + b"}",
    b"\xff\xfe" + "[".encode("utf-16-le") * 50_000,
    b"username=" + b"%FF" * 1000 + b"&password=" + b"x" * 3000,
]


def fill(path: str, segment: str) -> str:
    return re.sub(r"\{[^}]+\}", segment, path)


@pytest.fixture
async def dashboard(mosquitto: Mosquitto, store: Store, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_dashboard(make_config(mosquitto, "memory://", tmp_path), store) as run:
        yield run


async def callers(run: Running) -> AsyncIterator[tuple[str, httpx.AsyncClient, dict[str, str]]]:
    # The admin first: the hostile login bodies below count as failed logins from this address.
    async with run.client() as admin:
        csrf = await run.login(admin)
        yield "admin", admin, {"X-CSRF-Token": csrf}
    async with run.client() as token:
        yield "ingest token", token, {"Authorization": f"Bearer {TOKEN}"}
    async with run.client() as anonymous:
        yield "anonymous", anonymous, {}


def no_defect(r: httpx.Response, where: str) -> None:
    assert r.status_code < 500, (where, r.status_code, r.text[:300])
    assert "Traceback" not in r.text, where
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json") \
            and r.request.method != "HEAD":  # an answer to HEAD has no body, only its headers
        assert r.json()["error"], where


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_no_hostile_input_on_any_route_gets_a_5xx(dashboard: Running) -> None:
    assert len(ROUTES) > 20
    async for who, client, headers in callers(dashboard):
        for method, url in sorted({(m, fill(p, segment)) for m, p in ROUTES for segment in SEGMENTS}):
            if method in ("GET", "HEAD"):
                r = await client.request(method, url, params=QUERY, headers=headers)
                no_defect(r, f"{who} {method} {url[:80]}")
                continue
            for body in BODIES:
                r = await client.request(method, url, params=QUERY, content=body,
                                         headers={**headers, "Content-Type": "application/json"})
                no_defect(r, f"{who} {method} {url[:80]} {body[:30]!r}")
                if body.startswith(b"[["):
                    assert r.status_code == 400 and "levels deep" in r.json()["error"]
        r = await client.get("/api/v1/health")
        assert r.status_code == 200, r.text


async def raw_post(run: Running, method: str, url: str, head: str, body_chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a request head (and maybe body chunks) on a plain socket; the status and body of the answer.

    A plain socket, because the answer comes before the body is sent: an HTTP client would still be
    writing and see the connection closed.
    """
    host, port = run.config.dashboard.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{method} {url} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        for chunk in body_chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_a_body_over_the_limit_is_refused_on_every_route_before_authentication(dashboard: Running) -> None:
    limit = dashboard.config.dashboard.max_body_bytes
    mb = b" " * (1024 * 1024)
    for method, path in ROUTES:
        if method in ("GET", "HEAD") or path.startswith("/api/v1/rules/"):
            continue
        url = fill(path, "x")
        # 150 MB announced, none sent: refused at once, before authentication.
        status, body = await raw_post(dashboard, method, url, f"Content-Length: {150 * 1024 * 1024}\r\n", [])
        assert status == 413 and b"larger than" in body, (method, url, status, body[:200])
        chunks = [b"%x\r\n%s\r\n" % (len(mb), mb)] * (limit // len(mb) + 2) + [b"0\r\n\r\n"]
        status, body = await raw_post(dashboard, method, url, "Transfer-Encoding: chunked\r\n", chunks)
        assert status == 413 and b"larger than" in body, (method, url, status, body[:200])
