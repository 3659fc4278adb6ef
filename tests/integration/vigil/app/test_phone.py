"""The phone: `vigil notify test` reaches the receiver of the rules that `vigil init` and `vigil up --notify` write."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from pathlib import Path

from tests.support.console import VIGIL, Vigil
from tests.support.notify import Receiver
from tests.support.services import free_port

TEST_TITLE = "[TEST info] Vigil notification test"


async def _vigil(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    # in a thread: the receiver answers on this test's event loop meanwhile
    return await asyncio.to_thread(subprocess.run, [VIGIL, *argv], cwd=cwd, capture_output=True, text=True,
                                   timeout=60)


async def test_notify_test_reaches_the_phone_receiver_written_by_vigil_init(tmp_path: Path, receiver: Receiver) -> None:
    out = await _vigil(tmp_path, ["init", "--notify", receiver.url("my-phone")])
    assert out.returncode == 0, out.stderr
    out = await _vigil(tmp_path, ["notify", "test", "rules/"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [f"ok    phone  json://127.0.0.1:{receiver.port}/***"]
    assert [(m["path"], m["title"]) for m in receiver.received] == [("/my-phone", TEST_TITLE)]


async def test_up_notify_leads_to_a_notify_test_command_that_reaches_the_phone(
        tmp_path: Path, receiver: Receiver) -> None:
    url = receiver.url("topic?priority=high")
    up = Vigil(["up", "--notify", url, "--broker", f"mqtt://127.0.0.1:{free_port()}",
                "--listen", f"127.0.0.1:{free_port()}"], tmp_path)
    try:
        assert await asyncio.to_thread(up.read_until, "check it now", 60), up.output
        assert f"Notifications: to json://127.0.0.1:{receiver.port}/***" in up.output
        printed = up.lines[-1].split("check it now, with vigil up running or not: ", 1)[1]
        assert printed == "vigil notify test vigil-data/rules --receiver phone"
        out = await _vigil(tmp_path, shlex.split(printed)[1:])
        assert out.returncode == 0, out.stdout + out.stderr
        assert [(m["path"], m["title"]) for m in receiver.received] == [("/topic", TEST_TITLE)]
        assert await asyncio.to_thread(up.read_until, "Start an agent", 60), up.output
    finally:
        assert await asyncio.to_thread(up.stop) == 0, up.output[-2000:]
