"""Through apprise to local HTTP receivers: the acknowledgement link, the escalation to the second person along
a policy, a cleared latched alert, and ntfy's action buttons as the HTTP headers ntfy reads."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alerting import ledger
from alerting.notify import AppriseSender, Dispatcher, NotifyConfig, Outbox
from alerting.transition import AlertState, Severity, Transition
from tests.support.notify import Receiver
from vigil.core import acklink
from vigil.core.clock import ManualClock

START = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
SECRET = b"integration-secret-0123456789"
PUBLIC = "http://vigil.test:8080"
LINK = re.compile(r"Acknowledge: http://vigil\.test:8080/ack/(\S+)")


def fired(at: float = START) -> Transition:
    return Transition(id=f"fired-{at}", rule="freezer-warm", series="freezer-1/t0/temperature",
                      state=AlertState.FIRING, previous=AlertState.PENDING, at=at, severity=Severity.CRITICAL,
                      message="freezer-1 is at -8.0", since=at - 60, value=-8.0, notify=("kitchen",))


class Setup:
    def __init__(self, path: Path, data: dict[str, Any], env: dict[str, str]) -> None:
        self.path = path
        self.clock = ManualClock(START)
        self.config = NotifyConfig.model_validate(data)
        self.engine = sqlite3.connect(str(path))
        Outbox(self.engine).create_tables()
        self.outbox = Outbox(self.engine)
        self.dispatcher = Dispatcher(path, self.config, AppriseSender(timeout=10), self.clock, env=env,
                                     rng=random.Random(1), public_url=PUBLIC, link_secret=SECRET)

    def enqueue(self, t: Transition) -> None:
        self.outbox.enqueue(t)
        self.engine.commit()

    async def at(self, seconds: float) -> None:
        self.clock.set(START + seconds)
        await self.dispatcher.step()

    def close(self) -> None:
        self.dispatcher.close()
        self.engine.close()


async def test_link_then_escalation_to_the_second_person_then_cleared(tmp_path: Path, receiver: Receiver) -> None:
    port = "${VIGIL_NOTIFY_PORT}"
    s = Setup(tmp_path / "alerts.db", {
        "receivers": {"anna": f"json://127.0.0.1:{port}/anna", "ben": f"json://127.0.0.1:{port}/ben",
                      "manager": f"json://127.0.0.1:{port}/manager"},
        "schedules": {"cooks": {"rotation": "weekly", "handover": "07:00", "day": "mon", "start": "2026-05-25",
                                "people": ["anna", "ben"], "time_zone": "Europe/Berlin"}},
        "escalation_policies": {"kitchen": [{"notify": ["cooks"]}, {"after": "10m", "notify": ["manager"]}]},
        "grouping": {"group_wait": "30s", "group_interval": "1m"},
    }, {"VIGIL_NOTIFY_PORT": str(receiver.port)})
    try:
        t = dataclasses.replace(fired(), notify=("kitchen",))
        s.enqueue(t)
        await s.at(0)
        await s.at(30)
        [first] = receiver.received
        assert (first["path"], first["title"]) == ("/anna", "[FIRING critical] freezer-warm freezer-1/t0/temperature")
        token = LINK.search(first["message"])
        assert token is not None, first["message"]
        grant = acklink.verify(SECRET, token.group(1), START + 60)
        assert (grant.key, grant.episode, grant.to) == (t.key, t.since, "anna")
        await s.at(599)
        assert len(receiver.received) == 1
        await s.at(600)
        await s.at(630)
        second = receiver.received[1]
        assert (second["path"], second["title"]) == ("/manager",
                                                     "[ESCALATED critical] freezer-warm freezer-1/t0/temperature")
        manager_token = LINK.search(second["message"])
        assert manager_token is not None
        assert acklink.verify(SECRET, manager_token.group(1), START + 700).to == "manager"
        # the condition clears, the latched alert waits for an acknowledgement: both hear of it, with links
        s.enqueue(dataclasses.replace(t, id="cleared", state=AlertState.CLEARED, previous=AlertState.FIRING,
                                      at=START + 900, ended=START + 900, peak=-6.5, message="freezer-1 is at -17.0"))
        await s.at(900)
        await s.at(960)
        cleared = sorted(receiver.received[2:], key=lambda m: str(m["path"]))
        assert [(m["path"], m["title"].split("]")[0]) for m in cleared] == [
            ("/anna", "[CLEARED critical"), ("/manager", "[CLEARED critical")]
        assert "after 16m, peak -6.5; still needs acknowledgement." in cleared[0]["message"]
        assert all(LINK.search(m["message"]) for m in cleared)
        conn = sqlite3.connect(str(s.path))
        told = [(e.body["receiver"], e.body["kind"]) for e in ledger.entries(conn, kinds=["told"])]
        assert ledger.verify(conn) == []
        conn.close()
        assert told == [("anna", "firing"), ("manager", "escalation"), ("anna", "cleared"), ("manager", "cleared")]
    finally:
        s.close()


@dataclasses.dataclass
class NtfyServer:
    """Takes ntfy's JSON publish (POST /) and keeps the headers and body of each."""

    port: int = 0
    got: list[tuple[dict[str, str], dict[str, Any]]] = dataclasses.field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.got.append((headers, json.loads(body)))
            answer = b'{"id":"x1","event":"message"}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\nConnection: close\r\n\r\n" + answer)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def ntfy() -> AsyncIterator[NtfyServer]:
    n = NtfyServer()
    server = await asyncio.start_server(n.handle, "127.0.0.1", 0)
    n.port = server.sockets[0].getsockname()[1]
    yield n
    server.close()
    await server.wait_closed()


async def test_ntfy_receives_the_acknowledge_button_and_click_url(tmp_path: Path, ntfy: NtfyServer) -> None:
    s = Setup(tmp_path / "alerts.db", {"receivers": {"kitchen": "ntfy://127.0.0.1:${VIGIL_NOTIFY_PORT}/freezers"},
                                       "grouping": {"group_wait": "30s"}},
              {"VIGIL_NOTIFY_PORT": str(ntfy.port)})
    try:
        s.enqueue(fired())
        await s.at(0)
        await s.at(30)
        [(headers, body)] = ntfy.got
        assert body["topic"] == "freezers" and body["title"].startswith("[FIRING critical]")
        token = LINK.search(body["message"])
        assert token is not None
        link = f"{PUBLIC}/ack/{token.group(1)}"
        assert headers["x-click"] == link
        assert headers["x-actions"] == f"http, Acknowledge, {link}, method=POST, clear=true; view, Open, {link}"
        assert acklink.verify(SECRET, token.group(1), START + 60).to == "kitchen"
    finally:
        s.close()


@pytest.mark.parametrize("elsewhere", [False, True], ids=["state-in-data-dir", "state-elsewhere"])
async def test_make_dispatcher_signs_with_the_secret_of_the_data_directory(
        tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, elsewhere: bool) -> None:
    """The secret the dashboard checks links with: in the data directory (``secret_dir``), also when
    ``alerting.state`` is somewhere else; without a ``secret_dir``, beside the state file."""
    from alerting.delivery import make_dispatcher

    monkeypatch.delenv(acklink.SECRET_ENV, raising=False)
    state = tmp_path / ("state" if elsewhere else "data") / "alerts.db"
    state.parent.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    clock = ManualClock(START)
    config = NotifyConfig.model_validate({"receivers": {"kitchen": receiver.url("kitchen")},
                                          "grouping": {"group_wait": "30s"}})
    engine = sqlite3.connect(str(state))
    Outbox(engine).create_tables()
    Outbox(engine).enqueue(fired())
    engine.commit()
    plain = make_dispatcher(str(state), config, clock, public_url=None, secret_dir=str(data_dir))
    plain.close()
    assert not (data_dir / acklink.SECRET_FILE).exists()  # no public URL: no links, no secret made
    dispatcher = make_dispatcher(str(state), config, clock, public_url="https://vigil.example.org/",
                                 secret_dir=str(data_dir))
    try:
        await dispatcher.step()
        clock.set(START + 30)
        await dispatcher.step()
        [m] = receiver.received
        token = re.search(r"Acknowledge: https://vigil\.example\.org/ack/(\S+)", m["message"])
        assert token is not None, m["message"]
        secret = acklink.load_secret(data_dir)
        assert acklink.verify(secret, token.group(1), START + 60).to == "kitchen"
        assert not (tmp_path / "state" / acklink.SECRET_FILE).exists()
    finally:
        dispatcher.close()
        engine.close()
