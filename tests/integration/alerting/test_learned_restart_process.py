"""What stale and jump learned survives a SIGKILL of the real `vigil alerting` process (a private Mosquitto, a
local receiver): after the restart a jump in the first reading is judged (and held out of the threshold),
and a series that falls silent is stale at the interval it learned before the kill (saved every 30 s: the
test waits for it)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

RULES = """
receivers:
  ops: ["{url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
rules:
  - {{name: implausible, match: {{metric: temperature}}, jump: {{max_step: 5, per: 1m}}, hold_out: true, notify: ops}}
  - {{name: too-warm, match: {{metric: temperature}}, above: -10, notify: ops}}
  - {{name: silent, match: {{metric: temperature, device: s}}, stale: {{factor: 12, min: 1s}}, notify: ops}}
"""


def learned(state: Path) -> dict[str, dict[str, object]]:
    try:
        with sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True, timeout=1) as db:
            return {r[0]: json.loads(r[1])["data"] for r in db.execute("SELECT key, blob FROM learned_state")}
    except sqlite3.Error:
        return {}


def test_jump_and_stale_judge_from_the_first_reading_after_a_kill(
        tmp_path: Path, mosquitto: Mosquitto, probe: MqttProbe, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(url=receiver.url))
    state = tmp_path / "alerts.db"
    argv = ["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"), "--state", str(state)]
    first = engine_process(argv)
    first.start()
    wait_for(lambda: "connected to the broker" in first.output(), 30, "the engine to connect")
    # s reports every 0.5 s (stale at 12 x that silence), j at -18, until the engine saved what it learned
    # (at most every 30 s, alerting/intake.py): what the kill leaves
    def saved() -> bool:
        # stale's cells: the latest reading's time, intervals seen, their median; jump's: the reference's
        # time and value (alerting/conditions/{stale,jump}.py)
        silent = learned(state).get("silent/s/t0/temperature", {}).get("cells") or [0.0, 0.0, 0.0]
        ref = learned(state).get("implausible/j/t0/temperature", {}).get("cells") or [0.0, 0.0]
        return bool(silent[1] >= 5 and silent[2]) and ref[1] == -18.0
    deadline = time.monotonic() + 60
    while not saved():
        assert time.monotonic() < deadline, "the learned state was not saved within 60 s"
        probe.event("s", -18.0)
        probe.event("j", -18.0)
        time.sleep(0.5)
    first.kill()
    assert receiver.bodies == []

    second = engine_process(argv)
    second.start()
    wait_for(lambda: "connected to the broker" in second.output(), 30, "the restarted engine to connect")
    probe.event("s", -18.0)  # one reading, then silence
    probe.event("j", 25.0)   # the first reading of j after the restart: judged against -18
    titles = {"[FIRING warning] implausible j/t0/temperature", "[FIRING warning] silent s/t0/temperature"}
    wait_for(lambda: {b.get("title") for b in receiver.bodies} >= titles, 30,
             f"the jump and the stale alert; got {[b.get('title') for b in receiver.bodies]}")
    silent = next(b for b in receiver.bodies if b["title"] == "[FIRING warning] silent s/t0/temperature")
    assert "(it usually reports every 5" in silent["message"], silent  # 500ms and a bit
    jump = next(b for b in receiver.bodies if b["title"] == "[FIRING warning] implausible j/t0/temperature")
    assert jump["message"].startswith("j/t0 jumped from -18.0 to 25.0 °C in "), jump
    assert "; kept out of the other rules" in jump["message"], jump
    time.sleep(1.5)  # group_interval: a too-warm alert would have come by now
    assert {b.get("title") for b in receiver.bodies} == titles, receiver.bodies  # 25 °C held out: no too-warm
    second.stop()
    assert "Traceback" not in second.output(), second.output()[-3000:]
