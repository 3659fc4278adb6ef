"""The queue is on disk by default: Ctrl-C while the broker is down loses nothing and says what waits where."""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.edge import Agents, Recorder
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration

T0 = "vigil/readings/pi-1/t0"


def queued(db: Path) -> int:
    """Readings in the agent's queue.db, as another process sees them (0 until it exists)."""
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError:  # the agent is creating it
            return 0


def test_the_tours_command_keeps_readings_on_disk_through_ctrl_c_while_the_broker_is_down(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    # The README's command, with no queue option: the default directory (XDG_STATE_HOME here, see Agents).
    command = ("--broker", mosquitto.url, "--device", "pi-1", "--simulate", "t0", "--interval", "0.2")
    db = tmp_path / "state" / "vigil-edge" / "queue.db"
    mosquitto.stop()
    first = agents.spawn(None, *command)
    assert wait_until(lambda: queued(db) >= 5, 20), agents.log(0)
    first.send_signal(signal.SIGINT)
    assert first.wait(15) == 0
    log = agents.log(0)
    assert f"queue {db} (on disk, sync batch)" in log
    said = re.search(rf"(\d+) readings wait in {re.escape(str(db))}; they are sent when the broker answers", log)
    assert said, log
    waiting = int(said.group(1))
    assert waiting == queued(db) >= 5

    mosquitto.start()
    agents.spawn(None, *command)
    assert recorder.wait(lambda: len(recorder.on(T0)) >= waiting + 3, 30), agents.log(1)
    assert f"{waiting} readings wait in {db} (left from the last run)" in agents.log(1)
    seqs = recorder.seqs(T0)
    assert sorted(set(seqs)) == list(range(max(seqs) + 1)), f"a reading is missing: {seqs}"


def test_memory_only_when_asked_and_then_it_says_what_was_lost(
        mosquitto: Mosquitto, agents: Agents, tmp_path: Path) -> None:
    mosquitto.stop()
    proc = agents.spawn(None, "--broker", mosquitto.url, "--device", "pi-1", "--simulate", "t0", "--interval", "0.1",
                        "--queue", ":memory:")
    assert wait_until(lambda: "queue in memory (:memory:)" in agents.log(0), 20), agents.log(0)
    assert wait_until(lambda: "cannot reach the broker" in agents.log(0), 20), agents.log(0)
    time.sleep(1)  # ten readings at 0.1 s
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    assert re.search(r"WARNING edge\.agent: \d+ readings not sent and lost: the queue was in memory \(:memory:\)",
                     agents.log(0)), agents.log(0)
    assert not (tmp_path / "state").exists()
