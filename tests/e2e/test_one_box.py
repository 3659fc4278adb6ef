"""One box and a Pi, as issue 13 says it is done: `vigil up` without --demo, then the edge command
it prints, as printed. The box goes down (vigil up and its Mosquitto stop), the agent is killed with
SIGKILL meanwhile, both come back: every reading taken during the outage is stored, with no gap."""

from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path

import pytest

from tests.support.console import VIGIL, Vigil
from tests.support.services import ChildProcess, free_port, wait_until
from vigil.core.event import SeriesKey
from vigil.core.stores.sqlite import SqliteStore

SERIES = SeriesKey("temperature", "pi-1", "t0")


def _stored(db: Path) -> list[float]:
    if not db.exists():
        return []
    with SqliteStore(db) as s:
        return [p.ts for p in s.query(SERIES, 0, time.time() + 3600)]


def test_box_down_and_agent_killed_meanwhile_every_reading_arrives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the agent's default queue: this test's own
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    port, listen, data = free_port(), free_port(), tmp_path / "data"
    args = ["up", "--broker", f"mqtt://127.0.0.1:{port}", "--listen", f"127.0.0.1:{listen}", "--data-dir", str(data)]
    up = Vigil(args, tmp_path)
    assert up.read_until("Start an agent", 60), up.output
    assert up.read_until("vigil edge", 5), up.output
    argv = [VIGIL, *shlex.split(up.lines[-1].strip())[1:]]
    interval = float(argv[argv.index("--interval") + 1])
    edge = ChildProcess(argv, tmp_path / "edge.log", cwd=tmp_path)
    edge.start()
    try:
        assert wait_until(lambda: len(_stored(data / "vigil.db")) >= 2, 60), edge.output()[-3000:]
        assert up.stop() == 0, up.output[-3000:]  # the box goes down, its broker with it
        down_at = time.time()
        time.sleep(3.5 * interval)  # the agent keeps reading, into its queue
        edge.kill()  # SIGKILL: no goodbye, nothing flushed on the way out
        killed_at = time.time()
        up = Vigil(args, tmp_path)
        assert up.read_until("Start an agent", 60), up.output
        edge.start()
        back_at = time.time()
        assert wait_until(lambda: max(_stored(data / "vigil.db")) > back_at, 60), edge.output()[-3000:]
    finally:
        edge.stop()
        up.stop(signal.SIGINT)
    stored = _stored(data / "vigil.db")
    during = [ts for ts in stored if down_at < ts < killed_at]
    assert len(during) >= 3, (stored, down_at, killed_at)
    # one reading every interval, except while the agent itself was dead (it takes none then)
    gaps = [(a, b) for a, b in zip(stored, stored[1:]) if b - a >= 1.5 * interval
            and not (a <= killed_at and b >= back_at - 1.5 * interval)]
    assert not gaps, f"readings missing between {gaps} in {stored} (killed {killed_at:.1f}, back {back_at:.1f})"
