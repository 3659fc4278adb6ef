"""No route below admin, and no route at all, answers with a receiver's secret: every route, every role.

The rules file holds the apprise URL forms of the docs (user:password@, tokens in the host and
the path, secrets in the query, ntfy topics, mailto with a password, json/form webhooks) in
mixed-case schemes, which apprise accepts. Every answer of the real dashboard is searched for
every secret, including validation errors that quote a hidden placeholder put back where a
value is expected.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dashboard.passwords import hash_password
from dashboard.settings import TokenEntry, UserEntry
from tests.support.dashboard_served import TOKEN, Running, make_config, running_dashboard
from tests.support.services import Mosquitto
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

VIEWER_PW = "viewer password for secrets"
VIEWER_TOKEN = "viewer-token-for-the-secrets-test"

RULES = """rules:
  - name: freezer-warm
    match: {device: freezer}
    above: -10
    notify: [ops]
receivers:
  ops:
    - "Tgram://123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/987654"
    - "mailto://kitchen.user:Pa55,w0rdZ@mail.example.com?to=staff@example.com"
    - "json://hookuser:HookPassw0rd@hooks.example.com:8443/vigil?token=QueryTok3n99"
    - 'form://hooks.example.com/in?apikey=FormApiKey777'
    - ntfy://ntfy.sh/freezer-topic-8d1c
    - "ntfys://ntfyuser:NtfyPassw0rd@ntfy.example.org/private-topic-55"
    - discord://112233445566/DiscordWebhookTok3n
    - SLACK://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ
    - "pover://PoverUserKey1@PoverAppTok3n"
    - "ntfy://ntfy.sh/${VIGIL_NOTIFY_TOPIC}"
  web: [JSON://other:FlowSecret9@10.0.0.5/hook, "MailTo://u:${VIGIL_NOTIFY_SMTP_PASS}@smtp.example.com"]
"""
SECRETS = ["123456789", "AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs", "987654", "Pa55,w0rdZ", "Pa55", "w0rdZ",
           "HookPassw0rd", "QueryTok3n99", "FormApiKey777", "freezer-topic-8d1c", "NtfyPassw0rd",
           "private-topic-55", "112233445566", "DiscordWebhookTok3n", "T1JJ3T3L2", "A1BRTD4JD",
           "TIiajkdnlazkcOXrIdevi7FQ", "PoverUserKey1", "PoverAppTok3n", "FlowSecret9", "kitchen.user", "hookuser"]
READ_ROUTES = ["/api/v1/rules", "/api/v1/mute-windows", "/api/v1/latest", "/api/v1/devices", "/api/v1/alerts",
               "/api/v1/silences", "/api/v1/metrics", "/api/v1/openapi.json", "/api/v1/sparklines",
               "/api/v1/history?device=freezer&sensor=t0", "/api/v1/health", "/", "/rules", "/alerts",
               "/silences", "/login"]
PLACEHOLDER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://hidden-[0-9a-f]{16}")


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
async def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    base = make_config(mosquitto, f"sqlite:///{tmp_path}/vigil.db", tmp_path)
    (tmp_path / "rules.yaml").write_text(RULES)
    d = base.dashboard
    dashboard = d.model_copy(update={
        "users": [*d.users, UserEntry(name="viewer", role="read-only", password_hash=hash_password(VIEWER_PW))],
        "tokens": [*d.tokens, TokenEntry(name="grafana", role="read-only", token=VIEWER_TOKEN)],
    })
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    try:
        async with running_dashboard(base.model_copy(update={"dashboard": dashboard}), store) as run:
            yield run
    finally:
        store.close()


async def _as(run: Running, c: httpx.AsyncClient, role: str) -> dict[str, str]:
    """Make ``c`` act as ``role``; the headers its requests need."""
    if role == "viewer-token":
        return {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    if role == "ingest-token":
        return {"Authorization": f"Bearer {TOKEN}"}
    if role == "admin":
        return {"X-CSRF-Token": await run.login(c)}
    r = await c.post("/login", data={"username": "viewer", "password": VIEWER_PW})
    assert r.status_code == 303, r.text
    page = await c.get("/")
    return {"X-CSRF-Token": page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]}


def hostile_edits(masked: str) -> list[str]:
    """The masked file with its placeholders moved where the checker quotes values back."""
    holders = sorted(set(PLACEHOLDER.findall(masked)))
    assert len(holders) >= 10, masked
    out = [masked]
    for h in holders:
        out.append(masked.replace("above: -10", f"above: {h}"))
        out.append(masked.replace("name: freezer-warm", f"name: \"{h}\""))
        out.append(masked.replace("notify: [ops]", f"notify: [\"{h}\"]"))
    h = holders[0]
    out += [masked.replace("match: {device: freezer}", f"match: {{severity: \"{h}\"}}"),
            masked.replace("above: -10", f"above: -10\n    for: \"{h}\""),
            masked + f"\n{h}: [\n",  # a YAML syntax error on a line holding it
            f"rules: {h}\n"]
    return out


@pytest.mark.parametrize("role", ["viewer", "viewer-token", "ingest-token", "admin"])
async def test_no_route_answers_with_a_receiver_secret(dashboard: Running, role: str) -> None:
    async with dashboard.client() as client:
        headers = await _as(dashboard, client, role)
        auth = {k: v for k, v in headers.items() if k == "Authorization"}
        bodies: dict[str, str] = {}
        for path in READ_ROUTES:
            bodies[path] = (await client.get(path, headers=auth)).text
        async with client.stream("GET", "/api/v1/live", headers=auth) as live:
            first = b""
            async for chunk in live.aiter_bytes():
                first += chunk
                if b"\n\n" in first or live.status_code != 200:
                    break
            bodies["/api/v1/live"] = first.decode()
        if role == "ingest-token":
            masked = RULES  # it may not read the rules: try the raw placeholders' shapes anyway
            r = await client.get("/api/v1/rules", headers=auth)
            assert r.status_code == 403
        else:
            shown = (await client.get("/api/v1/rules", headers=auth)).json()
            masked = shown["files"][0]["text"]
            assert "Tgram://hidden-" in masked and "SLACK://hidden-" in masked and "JSON://hidden-" in masked
            assert "ntfy://ntfy.sh/${VIGIL_NOTIFY_TOPIC}" in masked, "a URL whose secrets are all ${VAR} is shown"
            assert shown["files"][0]["ok"] is True and shown["rules"][0]["name"] == "freezer-warm"
        answers = []
        for i, text in enumerate(hostile_edits(masked) if role != "ingest-token" else [RULES]):
            r = await client.post("/api/v1/rules/validate", json={"file": "rules.yaml", "text": text},
                                  headers=headers)
            assert r.status_code in (200, 403, 409, 422), r.text
            bodies[f"validate #{i}"] = r.text
            answers.append(r)
        if role != "ingest-token":
            assert any(a.json().get("ok") is False for a in answers), "the hostile edits were not even checked"
    found = {where: leaks(body) for where, body in bodies.items() if leaks(body)}
    assert not found, f"secrets in answers to {role}: {found}"


async def test_an_admin_saving_a_placeholder_in_a_comment_shows_nobody_the_url(dashboard: Running) -> None:
    async with dashboard.client() as client:
        headers = await _as(dashboard, client, "admin")
        masked = (await client.get("/api/v1/rules")).json()["files"][0]["text"]
        holder = next(h for h in PLACEHOLDER.findall(masked) if h.startswith("Tgram"))
        edited = masked + ("silences:\n  - {match: {device: x}, until: \"2099-01-01T00:00:00Z\", "
                           f"comment: \"{holder}\"}}\n")
        r = await client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": edited}, headers=headers)
        assert r.status_code == 200, r.text
        assert "AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs" in (dashboard_rules := Path(
            str(dashboard.config.dashboard.rules)).read_text()), "the real URL is kept on disk"
        assert dashboard_rules.count("123456789:AAEhBOweik6ad9r") == 2
        assert not leaks(r.text)
    async with dashboard.client() as viewer:
        await _as(dashboard, viewer, "viewer")
        body = (await viewer.get("/api/v1/rules")).text + (await viewer.get("/api/v1/mute-windows")).text
    assert "Tgram://hidden-" in body and not leaks(body), leaks(body)


async def test_a_stale_placeholder_is_refused_not_saved(dashboard: Running) -> None:
    async with dashboard.client() as client:
        headers = await _as(dashboard, client, "admin")
        masked = (await client.get("/api/v1/rules")).json()["files"][0]["text"]
        stale = PLACEHOLDER.sub("tgram://hidden-0000000000000000", masked, count=1)
        before = Path(str(dashboard.config.dashboard.rules)).read_text()
        r = await client.post("/api/v1/rules/reload", json={"file": "rules.yaml", "text": stale}, headers=headers)
        assert r.status_code == 409 and "reload the page" in r.json()["error"]
        assert Path(str(dashboard.config.dashboard.rules)).read_text() == before
