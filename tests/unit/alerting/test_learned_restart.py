"""What stale, stuck and jump learned survives a restart (a new Engine on the same state file), on a manual
clock: they judge from the first reading after it as before; a saved state that cannot be read is ignored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alerting.engine import Engine
from alerting.intake import LEARNED_EVERY
from alerting.state import StateDB
from tests.support.engine import T0, Recorder, engine, feed
from vigil.core.clock import ManualClock

RULES = """
rules:
  - {name: implausible, match: {metric: temperature}, jump: {max_step: 5, per: 1m}, hold_out: true}
  - {name: too-warm, match: {metric: temperature}, above: -10}
  - {name: silent, match: {metric: temperature}, stale: {factor: 3, min: 1s}}
  - {name: still, match: {metric: temperature}, stuck: {after: 2h, siblings: none}}
"""


def restart(path: Path, clock: ManualClock, rules: str = RULES) -> tuple[Engine, Recorder]:
    e, sink, _ = engine(rules, clock=clock, state=StateDB(path))
    return e, sink


def learn(path: Path) -> ManualClock:
    """An hour of readings every 10 s, the value still; then the engine stops."""
    e, _sink, clock = engine(RULES, state=StateDB(path))
    for _ in range(360):
        feed(e, clock, -18.0)
        clock.advance(10)
        e.tick()
    e.flush(learned=True)
    assert e.state is not None
    e.state.close()
    return clock


def test_a_jump_right_after_a_restart_is_judged_and_held_out(tmp_path: Path) -> None:
    clock = learn(tmp_path / "a.db")
    e, sink = restart(tmp_path / "a.db", clock)
    feed(e, clock, 25.0)
    assert [(t.rule, t.state.value) for t in sink.items] == [("implausible", "firing")]
    assert sink.items[0].message == "freezer-1/t0 jumped from -18.0 to 25.0 °C in 10 s; kept out of the other rules"


def test_a_learned_stale_interval_survives(tmp_path: Path) -> None:
    clock = learn(tmp_path / "a.db")
    e, sink = restart(tmp_path / "a.db", clock)
    feed(e, clock, -18.0)  # one reading after the restart, then silence: 3 x 10 s after it, it is stale
    clock.advance(31)
    e.tick()
    assert [(t.rule, t.state.value, t.at - clock.now()) for t in sink.items] == [("silent", "firing", -1.0)]
    assert sink.items[0].message.endswith("(it usually reports every 10s)")


def test_a_stuck_run_counts_across_the_restart(tmp_path: Path) -> None:
    clock = learn(tmp_path / "a.db")  # still for an hour
    e, sink = restart(tmp_path / "a.db", clock)
    for _ in range(362):
        feed(e, clock, -18.0)
        clock.advance(10)
    # two hours after the run began (before the restart), not two hours after the restart
    assert [(t.rule, t.state.value, t.at - T0) for t in sink.items] == [("still", "firing", 7210.0)]


def test_without_the_saved_state_the_first_reading_is_not_judged(tmp_path: Path) -> None:
    clock = learn(tmp_path / "a.db")
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute("DELETE FROM learned_state")
    e, sink = restart(tmp_path / "a.db", clock)
    feed(e, clock, 25.0)
    assert [(t.rule, t.state.value) for t in sink.items] == [("too-warm", "firing")]


@pytest.mark.parametrize("blob", [
    '{"v": 99, "kind": "Jump", "data": {}}',                        # a newer version
    '{"v": 2, "kind": "Stale", "data": {"cells": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}}',  # another condition's
    '{"v": 2, "kind": "Jump", "data": {"cells": [1e999, 1, 1, 0, 0, 0]}}',
    '{"v": 2, "kind": "Jump", "data": {"cells": ["a", 1, 1, 0, 0, 0]}}',
    '{"v": 2, "kind": "Jump", "data": {"cells": [1, 2]}}',
    '{"v": 2, "kind": "Jump", "data": {"cells": [1, 2, 3, true, 0, 0]}}',
    '{"v": 2, "kind": "Jump", "data": {"cells": 7}}',
    '{"v": 2, "kind": "Jump", "data": []}',
    '{"v": 2, "kind": "Jump"}',
    '[]', 'null', '{', '"' + "x" * 100_000 + '"', "[" * 100_000,
])
def test_a_saved_state_that_cannot_be_read_is_ignored(tmp_path: Path, blob: str) -> None:
    clock = learn(tmp_path / "a.db")
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute("UPDATE learned_state SET blob = ? WHERE rule = 'implausible'", (blob,))
    e, sink = restart(tmp_path / "a.db", clock)
    assert "implausible/freezer-1/t0/temperature" not in e.scratch or not e.scratch[
        "implausible/freezer-1/t0/temperature"]
    feed(e, clock, -18.0)  # learned anew: the first reading is the reference
    clock.advance(10)
    feed(e, clock, 25.0)
    assert [(t.rule, t.state.value) for t in sink.items] == [("implausible", "firing")]
    e.flush(learned=True)
    with sqlite3.connect(tmp_path / "a.db") as db:
        saved = db.execute("SELECT blob FROM learned_state WHERE rule = 'implausible'").fetchone()[0]
    assert json.loads(saved)["data"]["cells"][:2] == [T0 + 3600, -18.0]  # written anew, readable: the reference


def test_the_learned_state_of_a_removed_rule_is_forgotten_and_stays_small(tmp_path: Path) -> None:
    clock = learn(tmp_path / "a.db")
    with sqlite3.connect(tmp_path / "a.db") as db:
        rows = dict(db.execute("SELECT rule, length(blob) FROM learned_state"))
    assert set(rows) == {"implausible", "silent", "still"} and max(rows.values()) < 500, rows
    e, _ = restart(tmp_path / "a.db", clock, RULES.replace("stale: {factor: 3, min: 1s}", "above: 100"))
    sid = "freezer-1/t0/temperature"
    kept = [*(e.intake.series[sid].layout or {}), *(e.intake.raw[sid].layout or {})]  # (the jump rule holds out)
    assert {key.split(":")[0] for key in kept} == {"jump", "stuck"}  # restored; the stale rule's not
    e.flush(learned=True)
    with sqlite3.connect(tmp_path / "a.db") as db:
        assert {r[0] for r in db.execute("SELECT rule FROM learned_state")} == {"implausible", "still"}


def test_a_crash_loses_at_most_learned_every_seconds_of_learning(tmp_path: Path) -> None:
    e, _sink, clock = engine(RULES, state=StateDB(tmp_path / "a.db"))
    for _ in range(12):  # the service flushes after every batch; learned state is saved every 30 s
        feed(e, clock, -18.0)
        e.flush()
        clock.advance(10)
    last = clock.now() - 10
    with sqlite3.connect(tmp_path / "a.db") as db:  # no clean stop: what a crash leaves
        blob = db.execute("SELECT blob FROM learned_state WHERE rule = 'implausible'").fetchone()[0]
    saved = json.loads(blob)["data"]["cells"][0]  # the reference reading's time
    assert last - LEARNED_EVERY <= saved <= last
    e2, sink = restart(tmp_path / "a.db", clock)
    feed(e2, clock, 25.0)
    assert [(t.rule, t.state.value) for t in sink.items] == [("implausible", "firing")]


def test_reboots_counted_before_a_restart_still_count(tmp_path: Path) -> None:
    rules = "rules:\n  - {name: reboots, match: {metric: uptime}, restarts: {count: 3, within: 1d}}\n"
    e, _sink, clock = engine(rules, state=StateDB(tmp_path / "a.db"))
    uptime = 0.0
    for _boot in range(2):  # two reboots, an hour apart
        for _ in range(6):
            feed(e, clock, uptime, metric="uptime")
            clock.advance(600)
            uptime += 600
        uptime = 0.0
    feed(e, clock, uptime, metric="uptime")
    e.flush(learned=True)
    assert e.state is not None
    e.state.close()
    again, sink, _ = engine(rules, clock=clock, state=StateDB(tmp_path / "a.db"))
    clock.advance(600)
    feed(again, clock, 600.0, metric="uptime")
    assert sink.items == []  # still two
    clock.advance(600)
    feed(again, clock, 5.0, metric="uptime")  # the third, after the restart
    assert [(t.rule, t.state.value) for t in sink.items] == [("reboots", "firing")]
    assert sink.items[0].message == "freezer-1 rebooted 3 times in the last 24h"
