"""Apprise sends to a local HTTP receiver: the text a person receives, retries, restarts."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from alerting.notify import AppriseSender, Dispatcher, NotifyConfig, Outbox
from alerting.transition import AlertState, Severity, Transition
from tests.support.notify import Receiver
from vigil.core.clock import ManualClock

START = 1_780_000_000.0


def _t(n: int, state: AlertState = AlertState.FIRING, *, at: float = START, device: str = "freezer-1",
       message: str = "") -> Transition:
    return Transition(
        id=f"{device}-{n}", rule="freezer-warm", series=f"{device}/t0/temperature", state=state,
        previous=AlertState.PENDING if state is AlertState.FIRING else AlertState.FIRING, at=at,
        severity=Severity.CRITICAL, message=message or f"{device} is at -12.4 °C since 20:21", since=at,
        value=-12.4, notify=("kitchen",))


class Setup:
    def __init__(self, path: Path, receiver: Receiver, **grouping: Any) -> None:
        self.path = path
        self.clock = ManualClock(START)
        self.config = NotifyConfig.model_validate({
            "receivers": {"kitchen": ["json://127.0.0.1:${VIGIL_NOTIFY_RECEIVER_PORT}/kitchen"]},
            "grouping": {"group_wait": "30s", "group_interval": "5m", **grouping},
            "delivery": {"retry_initial": "10s", "retry_max": "1m"},
        })
        self.env = {"VIGIL_NOTIFY_RECEIVER_PORT": str(receiver.port)}
        self.engine = sqlite3.connect(str(path))
        self.outbox = Outbox(self.engine)
        self.outbox.create_tables()
        self.dispatcher = self.start()

    def start(self) -> Dispatcher:
        return Dispatcher(self.path, self.config, AppriseSender(timeout=10), self.clock, env=self.env,
                          rng=random.Random(1))

    def enqueue(self, t: Transition) -> None:
        self.outbox.enqueue(t)
        self.engine.commit()

    async def at(self, seconds: float) -> None:
        self.clock.set(START + seconds)
        await self.dispatcher.step()

    def close(self) -> None:
        self.dispatcher.close()
        self.engine.close()


async def test_a_person_receives_firing_then_resolved_text(tmp_path: Path, receiver: Receiver) -> None:
    s = Setup(tmp_path / "alerts.db", receiver)
    try:
        s.enqueue(_t(1))
        await s.at(0)
        await s.at(30)
        s.enqueue(_t(2, AlertState.RESOLVED, at=START + 330, message="freezer-1 is back at -18.0 °C"))
        await s.at(330)
        await s.at(630)
        assert [(m["path"], m["type"], m["title"]) for m in receiver.received] == [
            ("/kitchen", "failure", "[FIRING critical] freezer-warm freezer-1/t0/temperature"),
            ("/kitchen", "success", "[RESOLVED critical] freezer-warm freezer-1/t0/temperature"),
        ]
        assert receiver.received[0]["message"] == (
            "freezer-1 is at -12.4 °C since 20:21\nValue: -12.4\nFiring since 2026-05-28 20:26:40 UTC (30s).")
        assert receiver.received[1]["message"] == (
            "freezer-1 is back at -18.0 °C\n"
            "Fired for 5m30s, from 2026-05-28 20:26:40 UTC to 2026-05-28 20:32:10 UTC.")
    finally:
        s.close()


async def test_grouped_alerts_arrive_as_one_message(tmp_path: Path, receiver: Receiver) -> None:
    s = Setup(tmp_path / "alerts.db", receiver)
    try:
        for i in range(3):
            s.enqueue(_t(1, device=f"freezer-{i}"))
        await s.at(0)
        await s.at(30)
        [m] = receiver.received
        assert m["title"] == "[FIRING 3] freezer-warm (3 alerts)"
        assert m["message"].splitlines()[0::4] == [
            "- [FIRING critical] freezer-warm freezer-0/t0/temperature",
            "- [FIRING critical] freezer-warm freezer-1/t0/temperature",
            "- [FIRING critical] freezer-warm freezer-2/t0/temperature",
        ]
        assert "  freezer-2 is at -12.4 °C since 20:21" in m["message"].splitlines()
    finally:
        s.close()


async def test_receiver_failing_three_times_then_working_gets_it_exactly_once(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail = 3
    s = Setup(tmp_path / "alerts.db", receiver)
    try:
        s.enqueue(_t(1))
        await s.at(0)
        for second in range(30, 400, 5):
            await s.at(second)
        assert receiver.requests == 4
        assert [m["title"] for m in receiver.received] == ["[FIRING critical] freezer-warm freezer-1/t0/temperature"]
        assert s.dispatcher.status().failing == ()
        assert s.dispatcher.status().waiting == 0
    finally:
        s.close()


async def test_failing_receiver_shows_in_status_without_its_secret(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail = 100
    s = Setup(tmp_path / "alerts.db", receiver)
    try:
        s.enqueue(_t(1))
        await s.at(0)
        for second in range(30, 400, 10):
            await s.at(second)
        [failing] = s.dispatcher.status().failing
        assert failing.receiver == "kitchen" and failing.url == "json://127.0.0.1:${VIGIL_NOTIFY_RECEIVER_PORT}/***"
        assert failing.attempts >= 3
        assert failing.last_error == "Failed to send JSON POST notification: Internal server error., error=500."
        assert receiver.received == []
    finally:
        s.close()


async def test_restart_on_the_same_state_file_sends_nothing_twice(tmp_path: Path, receiver: Receiver) -> None:
    s = Setup(tmp_path / "alerts.db", receiver)
    try:
        s.enqueue(_t(1))
        s.enqueue(_t(1, device="freezer-2"))
        await s.at(0)
        await s.at(30)
        for n in range(3):
            s.dispatcher.close()
            s.dispatcher = s.start()
            await s.at(60 + n * 600)
        s.enqueue(_t(1))  # the engine replays a transition after its own crash: same id
        await s.at(3000)
        await s.at(3600)
        assert len(receiver.received) == 1
        assert receiver.requests == 1
    finally:
        s.close()
