"""SIGKILL in the middle of a send, and during group wait: what a person receives after the restart."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

from alerting.notify import AppriseSender, Dispatcher, NotifyConfig, Outbox
from alerting.transition import AlertState, Severity, Transition
from tests.support.notify import Receiver
from vigil.core.clock import SystemClock

ROOT = Path(__file__).resolve().parents[4]


def _firing(at: float) -> Transition:
    return Transition(id="t-1", rule="freezer-warm", series="freezer-1/t0/temperature", state=AlertState.FIRING,
                      previous=AlertState.PENDING, at=at, severity=Severity.CRITICAL,
                      message="freezer-1 is at -12.4 °C", since=at, value=-12.4, notify=("kitchen",))


async def _until(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_sigkill_during_a_send_resends_it_once_marked_as_possible_duplicate(
        tmp_path: Path, receiver: Receiver) -> None:
    state = tmp_path / "alerts.db"
    engine = sqlite3.connect(str(state))
    Outbox(engine).create_tables()
    Outbox(engine).enqueue(_firing(time.time()))
    engine.commit()
    engine.close()
    hang = receiver.hang = asyncio.Event()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.alerting.notify.crash_child", str(state), str(receiver.port),
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
        await _until(lambda: receiver.requests == 1)  # the request is out; the service has not answered
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    receiver.hang = None
    hang.set()  # the dead child's request gets no answer; its handler ends
    config = NotifyConfig.model_validate({"receivers": {"kitchen": [receiver.url("kitchen")]}})
    dispatcher = Dispatcher(state, config, AppriseSender(), SystemClock())
    try:
        await dispatcher.step()
        await dispatcher.step()
    finally:
        dispatcher.close()
    assert receiver.requests == 2
    [m] = receiver.received
    assert m["title"] == "[FIRING critical] freezer-warm freezer-1/t0/temperature"
    assert m["message"].startswith("(Vigil stopped while sending this message; you may have received it already.)\n"
                                   "freezer-1 is at -12.4 °C\n")
