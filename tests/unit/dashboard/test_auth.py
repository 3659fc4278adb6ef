"""Who may do what: every API route needs a login (but health), roles, CSRF, rate limits, cookies."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from dashboard.auth import ensure_admin
from dashboard.passwords import hash_password, verify_password
from dashboard.settings import DashboardSettings
from tests.support.dashboard_app import (
    ADMIN_PW,
    INGEST_TOKEN,
    NOW,
    VIEWER_PW,
    VIEWER_TOKEN,
    Harness,
    RecordingPublisher,
    make_config,
)
from vigil.app.config import ConfigError, load_config
from vigil.app.dashboard_wiring import create_dashboard
from vigil.core.stores import MemoryStore

READ_ROUTES = ["/api/v1/openapi.json", "/api/v1/live", "/api/v1/mute-windows", "/api/v1/latest",
               "/api/v1/devices", "/api/v1/alerts", "/api/v1/silences", "/api/v1/rules", "/api/v1/metrics",
               "/api/v1/sparklines", "/api/v1/history?device=d&sensor=s&metric=temperature"]
PAGES = ["/", "/alerts", "/rules", "/silences", "/sensor/d/s/temperature"]


@pytest.mark.parametrize("path", READ_ROUTES)
async def test_every_api_route_needs_a_login(harness: Harness, path: str) -> None:
    r = await harness.client.get(path)
    assert r.status_code == 401
    assert r.json()["error"] == "not logged in"


@pytest.mark.parametrize("path", PAGES)
async def test_pages_send_people_to_the_login(harness: Harness, path: str) -> None:
    r = await harness.client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


async def test_health_needs_no_login_and_says_what_is_down(harness: Harness) -> None:
    r = await harness.client.get("/api/v1/health")
    # No broker feed in this harness: the live state is not connected, so it is degraded.
    assert r.status_code == 503
    assert r.json() == {"status": "degraded", "broker": False, "store": True}
    harness.live.set_connected(True)
    r = await harness.client.get("/api/v1/health")
    assert (r.status_code, r.json()["status"]) == (200, "ok")


async def test_login_sets_a_strict_httponly_cookie(harness: Harness) -> None:
    r = await harness.client.post("/login", content=f"username=admin&password={ADMIN_PW.replace(' ', '+')}",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie


async def test_cookie_is_secure_behind_tls(tmp_path: Path) -> None:
    config = make_config(tmp_path, public_url="https://vigil.example.org")
    app = create_dashboard(config, store=MemoryStore(), publisher=RecordingPublisher())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/login", content=f"username=admin&password={ADMIN_PW}",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "secure" in r.headers["set-cookie"].lower()


async def test_wrong_password_is_refused_and_rate_limited(harness: Harness) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for _ in range(5):
        r = await harness.client.post("/login", content="username=admin&password=nope", headers=form)
        assert r.status_code == 401
        assert "wrong user name or password" in r.text
    r = await harness.client.post("/login", content=f"username=admin&password={ADMIN_PW}", headers=form)
    assert r.status_code == 429, "the right password must not get through while the limit holds"
    assert int(r.headers["retry-after"]) >= 1
    harness.clock.advance(61)
    r = await harness.client.post("/login", content=f"username=admin&password={ADMIN_PW}", headers=form)
    assert r.status_code == 303


async def test_unknown_user_gets_the_same_answer(harness: Harness) -> None:
    r = await harness.client.post("/login", content="username=mallory&password=x",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 401 and "wrong user name or password" in r.text


async def test_login_from_another_site_is_refused(harness: Harness) -> None:
    r = await harness.client.post("/login", content=f"username=admin&password={ADMIN_PW}",
                                  headers={"Content-Type": "application/x-www-form-urlencoded",
                                           "Origin": "https://evil.example"})
    assert r.status_code == 403


@pytest.mark.parametrize("nxt", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
async def test_login_never_redirects_off_site(harness: Harness, nxt: str) -> None:
    r = await harness.client.post("/login", content=f"username=admin&password={ADMIN_PW}&next={nxt}",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.headers["location"] == "/"


async def test_forged_and_expired_sessions_are_refused(harness: Harness) -> None:
    await harness.login()
    assert (await harness.client.get("/api/v1/latest")).status_code == 200
    cookie = harness.client.cookies["vigil_session"]
    body, _, sig = cookie.partition(".")
    harness.client.cookies.set("vigil_session", body + "." + sig[:-2] + "AA")
    assert (await harness.client.get("/api/v1/latest")).status_code == 401
    harness.client.cookies.set("vigil_session", cookie)
    harness.clock.advance(12 * 3600 + 1)
    r = await harness.client.get("/api/v1/latest")
    assert r.status_code == 401 and "expired" in r.json()["error"]


async def test_state_changes_need_the_csrf_token(harness: Harness) -> None:
    harness.live.handle("vigil/alerts/hot/d/s/temperature",
                        json.dumps({"rule": "hot", "series": "d/s/temperature", "state": "firing"}).encode(), NOW)
    csrf = await harness.login()
    url = "/api/v1/alerts/hot/d/s/temperature/ack"
    r = await harness.client.post(url, json={})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = await harness.client.post(url, json={}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = await harness.client.post(url, json={}, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert r.status_code == 403
    assert harness.publisher.sent == []
    r = await harness.client.post(url, json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert len(harness.publisher.sent) == 1


async def test_read_only_users_cannot_act(harness: Harness) -> None:
    harness.live.handle("vigil/alerts/hot/d/s/temperature",
                        json.dumps({"rule": "hot", "series": "d/s/temperature", "state": "firing"}).encode(), NOW)
    csrf = await harness.login("viewer", VIEWER_PW)
    h = {"X-CSRF-Token": csrf}
    assert (await harness.client.get("/api/v1/alerts")).status_code == 200
    r = await harness.client.post("/api/v1/alerts/hot/d/s/temperature/ack", json={}, headers=h)
    assert r.status_code == 403 and "admin" in r.json()["error"]
    r = await harness.client.post("/api/v1/silences", json={"matchers": {"device": "d"}}, headers=h)
    assert r.status_code == 403
    r = await harness.client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": "rules: []"}, headers=h)
    assert r.status_code == 403
    assert harness.publisher.sent == []


async def test_tokens_have_their_role(harness: Harness) -> None:
    r = await harness.client.get("/api/v1/latest", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
    assert r.status_code == 200
    r = await harness.client.get("/api/v1/latest", headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert r.status_code == 403, "an ingest token may only post readings"
    r = await harness.client.get("/api/v1/latest", headers={"Authorization": "Bearer wrong-token-000000000"})
    assert r.status_code == 401
    r = await harness.client.get("/api/v1/latest", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert r.status_code == 401


def test_password_hashes_verify_and_differ() -> None:
    a, b = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert a != b and a.startswith("$argon2id$")
    assert verify_password("s3cret-pass", a) and not verify_password("s3cret-pasS", a)
    assert not verify_password("x", "scrypt$garbage")


def test_a_plain_password_in_the_config_is_an_error_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "vigil.yaml"
    f.write_text("dashboard:\n  users:\n    - name: admin\n      password_hash: hunter2\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = str(err.value)
    assert f"{f}:4: dashboard.users[0].password_hash:" in text and "--hash-password" in text


def test_short_tokens_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "vigil.yaml"
    f.write_text("dashboard:\n  tokens:\n    - name: t\n      token: short\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "at least 16 characters" in str(err.value)


def test_ensure_admin_makes_one_password_once(tmp_path: Path) -> None:
    settings, password = ensure_admin(DashboardSettings(), tmp_path)
    assert password and settings.users[0].name == "admin" and settings.users[0].role == "admin"
    assert verify_password(password, settings.users[0].password_hash)
    assert (tmp_path / "dashboard-admin.hash").stat().st_mode & 0o777 == 0o600
    again, none = ensure_admin(DashboardSettings(), tmp_path)
    assert none is None and again.users[0].password_hash == settings.users[0].password_hash


async def test_secrets_never_show_in_pages_or_api(harness: Harness) -> None:
    await harness.login()
    texts = [(await harness.client.get(p)).text for p in ["/", "/api/v1/rules", "/api/v1/metrics"]]
    for t in texts:
        assert INGEST_TOKEN not in t and "session-secret-for-tests" not in t


def test_config_check_never_prints_dashboard_secrets(tmp_path: Path) -> None:
    from vigil.app.config import dump_config

    f = tmp_path / "vigil.yaml"
    f.write_text("dashboard:\n  tokens: [{name: t, token: secret-token-1234567890}]\n"
                 "  hmac_keys: [{id: k, secret: hmac-secret-1234567890}]\n  session_secret: sess-secret-xyz\n")
    text = dump_config(load_config(f))
    for secret in ("secret-token-1234567890", "hmac-secret-1234567890", "sess-secret-xyz"):
        assert secret not in text
    assert "token: '**********'" in text


async def test_logout_ends_the_session_on_the_server(harness: Harness) -> None:
    csrf = await harness.login()
    cookie = harness.client.cookies["vigil_session"]
    assert (await harness.client.post("/logout")).status_code == 403, "a forged logout needs the CSRF token"
    assert (await harness.client.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    harness.client.cookies.set("vigil_session", cookie)
    r = await harness.client.get("/api/v1/latest")
    assert r.status_code == 401 and "logged out" in r.json()["error"]
    assert (await harness.client.get("/")).status_code == 303, "pages send the replayed cookie to the login"
    harness.client.cookies.clear()
    await harness.login()
    assert (await harness.client.get("/api/v1/latest")).status_code == 200
