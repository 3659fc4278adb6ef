"""Latched alarms (``latch: true``): cleared until someone acknowledges, every path of the state machine, with
the excursion's peak and end, and the ledger rows each transition appends in the state's own transaction."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from alerting import ledger
from alerting.engine import Engine
from alerting.excursion import badness, worse
from alerting.rules import RulesError, load_rules_text
from alerting.state import StateDB
from alerting.transition import AlertState, Transition
from tests.support.engine import T0, Recorder, engine, ev, feed
from vigil.core.clock import ManualClock

KEY = "hot/freezer-1/t0/temperature"
SERIES = "freezer-1/t0/temperature"
LATCHED = "rules: [{name: hot, above: 30, latch: true}]"


def moves(ts: list[Transition]) -> list[tuple[str, str]]:
    return [(t.previous.value, t.state.value) for t in ts]


def kinds(db: StateDB) -> list[str]:
    return [e.kind for e in ledger.entries(db.conn)]


def latched(text: str = LATCHED, path: Optional[Path] = None,
            clock: Optional[ManualClock] = None) -> tuple[Engine, Recorder, ManualClock, StateDB]:
    db = StateDB(path or ":memory:")
    e, sink, clock = engine(text, clock=clock, state=db)
    return e, sink, clock, db


def fire_and_clear(e: Engine, clock: ManualClock) -> None:
    """Hot at T0 (35), hotter at T0+10 (40), cold at T0+20."""
    feed(e, clock, 35.0)
    clock.advance(10)
    feed(e, clock, 40.0)
    clock.advance(10)
    feed(e, clock, 20.0)


def test_a_latched_alert_stays_cleared_until_acknowledged_then_resolves() -> None:
    e, sink, clock, db = latched()
    fire_and_clear(e, clock)
    assert moves(sink.items) == [("ok", "firing"), ("firing", "cleared")]
    cleared = sink.items[-1]
    assert (cleared.since, cleared.at, cleared.ended, cleared.peak) == (T0, T0 + 20, T0 + 20, 40.0)
    assert cleared.ended - cleared.since == 20  # the excursion's duration
    clock.advance(600)
    feed(e, clock, 19.0)  # it stays cleared, whatever the readings say
    clock.advance(600)
    assert e.tick() == [] and e.alerts[KEY].state == AlertState.CLEARED
    done = e.acknowledge("hot", SERIES, "ana", "door shut", via="dashboard")
    assert done is not None and moves(done.transitions) == [("cleared", "resolved")]
    resolved = done.transitions[0]
    assert (resolved.since, resolved.ended, resolved.peak, resolved.at) == (T0, T0 + 20, 40.0, T0 + 1220)
    assert sink.items[-1] == resolved  # notified
    assert kinds(db) == ["fired", "cleared", "acked", "resolved"]
    bodies = [x.body for x in ledger.entries(db.conn)]
    assert bodies[0] == {"rule": "hot", "series": SERIES, "since": T0, "at": T0, "value": 35.0, "peak": 35.0,
                         "severity": "warning", "message": sink.items[0].message, "unit": "°C", "latched": True}
    assert bodies[1] == {"since": T0, "at": T0 + 20, "peak": 40.0}
    assert bodies[2] == {"by": "ana", "comment": "door shut", "via": "dashboard", "episode": T0, "at": T0 + 1220}
    assert bodies[3] == {"since": T0, "at": T0 + 1220, "ended": T0 + 20, "peak": 40.0, "acknowledged_by": "ana"}
    assert ledger.verify(db.conn) == []
    assert e.acknowledge("hot", SERIES, "ana", "door shut") is None  # resolved: nothing left to acknowledge


def test_acknowledged_while_firing_it_resolves_when_it_clears() -> None:
    e, sink, clock, db = latched()
    feed(e, clock, 35.0)
    done = e.acknowledge("hot", SERIES, "bo", episode=T0)
    assert done is not None and done.transitions == [] and done.record.state == AlertState.FIRING
    clock.advance(30)
    feed(e, clock, 20.0)
    assert moves(sink.items) == [("ok", "firing"), ("firing", "resolved")]
    assert sink.items[-1].ended == T0 + 30
    assert kinds(db) == ["fired", "acked", "resolved"]
    assert ledger.entries(db.conn)[-1].body["acknowledged_by"] == "bo"


def test_a_new_excursion_while_cleared_fires_again_and_an_old_episode_is_a_stale_acknowledgement() -> None:
    e, sink, clock, db = latched()
    fire_and_clear(e, clock)
    clock.advance(100)
    feed(e, clock, 33.0)  # T0+120: a new excursion
    clock.advance(10)
    feed(e, clock, 31.0)
    refire = sink.items[-1]
    assert moves(sink.items[-1:]) == [("cleared", "firing")]
    assert (refire.since, refire.peak) == (T0 + 120, 33.0)  # a new since; the peak starts again
    assert e.acknowledge("hot", SERIES, "ana", episode=T0) is None  # the link of the first one: stale
    assert e.alerts[KEY].acked_by is None
    clock.advance(10)
    feed(e, clock, 20.0)  # not acknowledged: cleared again, with this excursion's peak
    assert moves(sink.items[-1:]) == [("firing", "cleared")]
    assert (sink.items[-1].since, sink.items[-1].peak, sink.items[-1].ended) == (T0 + 120, 33.0, T0 + 140)
    done = e.acknowledge("hot", SERIES, "ana", episode=T0 + 120)
    assert done is not None and moves(done.transitions) == [("cleared", "resolved")]
    assert kinds(db) == ["fired", "cleared", "fired", "cleared", "acked", "resolved"]
    assert ledger.verify(db.conn) == []


def test_a_pending_excursion_while_cleared_is_quiet_and_does_not_change_the_cleared_one() -> None:
    e, sink, clock, _db = latched("rules: [{name: hot, above: 30, for: 1m, latch: true}]")
    feed(e, clock, 35.0)
    clock.advance(60)
    e.tick()
    clock.advance(10)
    feed(e, clock, 45.0)
    clock.advance(10)
    feed(e, clock, 20.0)
    assert moves(sink.items) == [("pending", "firing"), ("firing", "cleared")]  # pending is not notified
    n = len(sink.items)
    clock.advance(10)
    assert feed(e, clock, 50.0) == []  # pending under the cleared state: nothing published
    clock.advance(20)
    assert feed(e, clock, 20.0) == []  # and over before its for
    assert e.alerts[KEY].state == AlertState.CLEARED
    clock.advance(10)
    feed(e, clock, 55.0)  # pending again when it is acknowledged
    done = e.acknowledge("hot", SERIES, "ana")
    assert done is not None
    resolved = done.transitions[0]
    assert (resolved.since, resolved.peak, resolved.ended) == (T0, 45.0, T0 + 80)  # the cleared excursion's
    assert len(sink.items) == n + 1
    clock.advance(60)
    fired = e.tick()
    assert moves(fired) == [("resolved", "firing")] and fired[0].since == T0 + 120
    assert e.alerts[KEY].acked_by is None  # the acknowledgement was the cleared excursion's


def test_every_transition_of_an_excursion_carries_its_peak_so_far() -> None:
    e, _, clock, _ = latched("rules: [{name: hot, above: 30, for: 1m, keep_firing_for: 30s, latch: true}]")
    pending = feed(e, clock, 35.0)
    assert moves(pending) == [("ok", "pending")] and (pending[0].peak, pending[0].ended) == (35.0, None)
    clock.advance(20)
    feed(e, clock, 38.0)
    clock.advance(20)
    feed(e, clock, 36.0)
    clock.advance(20)
    fired = e.tick()
    assert moves(fired) == [("pending", "firing")] and (fired[0].peak, fired[0].ended) == (38.0, None)
    clock.advance(10)
    assert feed(e, clock, 20.0) == []  # keep_firing_for: the cold reading is not part of the excursion's worst
    clock.advance(30)
    cleared = e.tick()
    assert moves(cleared) == [("firing", "cleared")]
    assert (cleared[0].since, cleared[0].peak, cleared[0].ended) == (T0, 38.0, T0 + 70)


def test_a_rule_without_latch_resolves_as_before() -> None:
    e, sink, clock, db = latched("rules: [{name: hot, above: 30}]")
    fire_and_clear(e, clock)
    assert moves(sink.items) == [("ok", "firing"), ("firing", "resolved")]
    assert (sink.items[-1].peak, sink.items[-1].ended) == (40.0, T0 + 20)
    assert kinds(db) == ["fired", "resolved"]
    assert ledger.entries(db.conn)[0].body["latched"] is False


FLAPPY = """
rules:
  - {name: hot, above: 30, latch: true, flapping: {changes: 4, window: 10m}}
"""


def flap(e: Engine, clock: ManualClock, rounds: int) -> None:
    for _ in range(rounds):
        feed(e, clock, 35.0)
        clock.advance(20)
        feed(e, clock, 20.0)
        clock.advance(20)


def test_a_latched_alert_that_flaps_settles_cleared_not_resolved() -> None:
    e, sink, clock, db = latched(FLAPPY)
    flap(e, clock, 2)
    assert moves(sink.items) == [("ok", "firing"), ("firing", "cleared"), ("cleared", "firing"),
                                 ("firing", "flapping")]
    clock.advance(3600)
    assert moves(e.tick()) == [("flapping", "cleared")]  # calm for the window: nobody acknowledged it
    cleared = sink.items[-1]
    assert cleared.ended == T0 + 60 and cleared.since == T0 + 40  # the last excursion's
    done = e.acknowledge("hot", SERIES, "ana")
    assert done is not None and moves(done.transitions) == [("cleared", "resolved")]
    assert kinds(db) == ["fired", "cleared", "fired", "cleared", "acked", "resolved"]
    assert ledger.verify(db.conn) == []


def test_a_latched_alert_acknowledged_while_flapping_settles_resolved() -> None:
    e, _sink, clock, _db = latched(FLAPPY)
    flap(e, clock, 2)
    assert e.acknowledge("hot", SERIES, "ana") is not None
    flap(e, clock, 2)  # it goes on flapping, quietly: the acknowledgement holds
    clock.advance(3600)
    assert moves(e.tick()) == [("flapping", "resolved")]


def test_the_link_of_a_flapping_notification_still_acknowledges_after_more_quiet_flaps() -> None:
    e, sink, clock, _ = latched(FLAPPY)
    flap(e, clock, 2)
    flapping = sink.items[-1]
    assert flapping.state == AlertState.FLAPPING
    flap(e, clock, 3)  # quiet excursions, each with its own start
    assert sink.items[-1] == flapping
    assert e.acknowledge("hot", SERIES, "ana", episode=flapping.since) is not None


def test_cleared_survives_a_restart_and_is_acknowledged_after_it(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    e, _sink, clock, db = latched(path=path)
    fire_and_clear(e, clock)
    db.close()
    clock.advance(3600)
    e2, _sink2, _, db2 = latched(path=path, clock=clock)
    assert e2.alerts[KEY].state == AlertState.CLEARED and e2.alerts[KEY].peak == 40.0
    assert e2.take_start_news() == ([], [])  # nothing to tell again
    done = e2.acknowledge("hot", SERIES, "ana", episode=T0)
    assert done is not None and [(t.since, t.peak, t.ended) for t in done.transitions] == [(T0, 40.0, T0 + 20)]
    assert kinds(db2) == ["fired", "cleared", "acked", "resolved"] and ledger.verify(db2.conn) == []


def test_an_older_state_file_gets_the_new_columns_and_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the state file as it was before latching
        conn.execute("CREATE TABLE alert_state (key TEXT PRIMARY KEY, rule TEXT NOT NULL, series TEXT NOT NULL, "
                     "state TEXT NOT NULL, underlying TEXT NOT NULL, state_since REAL NOT NULL, pending_since REAL, "
                     "firing_since REAL, clear_since REAL, value REAL, changes TEXT NOT NULL DEFAULT '[]', "
                     "acked_by TEXT, ack_comment TEXT, last_transition TEXT)")
        conn.execute("INSERT INTO alert_state VALUES (?, 'hot', ?, 'firing', 'firing', ?, ?, ?, NULL, 35, '[]', "
                     "NULL, NULL, NULL)", (KEY, SERIES, T0, T0, T0))
    e, sink, clock, db = latched(path=path)
    rec = e.alerts[KEY]
    assert (rec.state, rec.peak, rec.episode, rec.ended, rec.acked_at) == (AlertState.FIRING, None, None, None, None)
    clock.advance(10)
    feed(e, clock, 20.0)  # an alert fired before the upgrade latches too
    assert moves(sink.items) == [("firing", "cleared")]
    # its peak from then on: the value it was firing with (kept in the old file), not the cold one
    assert db.conn.execute("SELECT peak, ended FROM alert_state").fetchone() == (35.0, T0 + 10)
    assert kinds(db) == ["cleared"]


def test_a_late_reading_does_not_move_a_cleared_alert_back_in_time() -> None:
    e, _sink, clock, db = latched()
    fire_and_clear(e, clock)
    clock.advance(100)
    assert e.on_event(ev(25.0, T0 + 15)) == []  # late and cold: nothing changes
    assert e.alerts[KEY].state == AlertState.CLEARED
    out = e.on_event(ev(50.0, T0 + 15))  # late and hot: a new excursion, not before the clear
    assert moves(out) == [("cleared", "firing")] and out[0].at == T0 + 20 and out[0].peak == 50.0
    assert kinds(db) == ["fired", "cleared", "fired"]


def test_reload_removing_the_rule_of_a_cleared_alert_resolves_it_once() -> None:
    e, _sink, clock, db = latched("rules: [{name: hot, above: 30, latch: true}, {name: cold, below: 0}]")
    fire_and_clear(e, clock)
    new, _ = load_rules_text("rules: [{name: cold, below: 0}]", "t.yaml")
    dropped, out = e.reload(new)
    assert dropped == [KEY] and moves(out) == [("cleared", "resolved")]
    assert (out[0].since, out[0].peak, out[0].ended) == (T0, 40.0, T0 + 20)
    assert KEY not in e.alerts
    assert kinds(db) == ["fired", "cleared", "resolved"] and ledger.verify(db.conn) == []
    assert e.acknowledge("hot", SERIES, "ana") is None


def test_a_cleared_alert_whose_rule_was_removed_while_down_is_resolved_on_start(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    e, _, clock, db = latched(path=path)
    fire_and_clear(e, clock)
    db.close()
    e2, _, _, db2 = latched("rules: [{name: cold, below: 0}]", path=path, clock=clock)
    news, gone = e2.take_start_news()
    assert gone == [KEY] and moves(news) == [("cleared", "resolved")]
    assert kinds(db2) == ["fired", "cleared", "resolved"] and ledger.verify(db2.conn) == []


def test_a_crash_before_the_commit_neither_loses_nor_doubles_a_row(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"

    class Failing(Recorder):
        fail = False

        def enqueue(self, t: Transition) -> None:
            if self.fail:
                raise OSError("disk gone")
            super().enqueue(t)

    rules, _ = load_rules_text(LATCHED, "t.yaml")
    clock = ManualClock(T0)
    db, sink = StateDB(path), Failing()
    e = Engine(rules, state=db, sink=sink, clock=clock)
    feed(e, clock, 35.0)
    clock.advance(20)
    sink.fail = True
    with pytest.raises(OSError):
        feed(e, clock, 20.0)  # the commit of the clear fails: rolled back, state and row alike
    db.close()
    assert kinds(StateDB(path)) == ["fired"]
    db2 = StateDB(path)
    e2 = Engine(rules, state=db2, sink=Recorder(), clock=clock)
    assert e2.alerts[KEY].state == AlertState.FIRING
    e2.on_event(ev(20.0, T0 + 20))  # the broker delivers the reading again
    e2.on_event(ev(20.0, T0 + 20))
    assert kinds(db2) == ["fired", "cleared"] and ledger.verify(db2.conn) == []


def test_rows_are_written_on_transitions_only() -> None:
    e, _sink, clock, db = latched()
    for i in range(100):
        feed(e, clock, 35.0 + i % 7)
        clock.advance(1)
    assert kinds(db) == ["fired"]
    assert e.alerts[KEY].peak == 41.0
    e.flush()  # as the service does before acknowledging a batch
    assert db.conn.execute("SELECT peak FROM alert_state").fetchone() == (41.0,)  # kept for a restart


def test_a_repeated_acknowledgement_is_recorded_once_and_another_person_is_recorded_too() -> None:
    e, _sink, clock, db = latched()
    feed(e, clock, 35.0)
    assert e.acknowledge("hot", SERIES, "ana", "on it") is not None
    assert e.acknowledge("hot", SERIES, "ana", "on it") is None  # redelivered
    assert e.acknowledge("hot", SERIES, "bo", "me too") is not None
    assert kinds(db) == ["fired", "acked", "acked"]


@pytest.mark.parametrize("condition,values,peak", [
    ("above: 30", [35, 41, 38], 41),
    ("below: 0", [-1, -7, -3], -7),
    ("above: 8, below: 0", [9, -4, 10], -4),
    ("aggregate: {fn: max, window: 1h, below: 0}", [-1, -7, -3], -7),
    ("drift: {max: 1}", [1.5, -3.0, 2.0], -3.0),
    ("all: [{below: 0}, {rate: {above: 1}}]", [-1, -7, -3], -7),
])
def test_the_peak_is_the_worst_value_the_way_the_rule_looks(condition: str, values: list[float],
                                                            peak: float) -> None:
    text = f"rules: [{{name: r, {condition}}}]"
    rules, _ = load_rules_text(text, "t.yaml")
    key = badness(rules.rules[0].spec)
    got: Optional[float] = None
    for v in values:
        got = worse(key, got, v)
    assert got == peak


def test_nodata_and_forecast_peaks() -> None:
    rules, _ = load_rules_text(textwrap.dedent("""
        rules:
          - {name: quiet, nodata: 5m}
          - {name: soon, forecast: {above: 5, within: 1h}}
    """), "t.yaml")
    quiet, soon = (badness(r.spec) for r in rules.rules)
    assert worse(quiet, 300.0, 900.0) == 900.0  # a longer silence is worse
    assert worse(soon, 1800.0, 600.0) == 600.0  # less time left is worse


def test_latch_is_checked_and_off_by_default() -> None:
    rules, _ = load_rules_text("rules: [{name: hot, above: 30}]", "t.yaml")
    assert rules.rules[0].spec.latch is False
    with pytest.raises(RulesError, match="latch"):
        load_rules_text("rules: [{name: hot, above: 30, latch: sometimes}]", "t.yaml")


def test_the_docs_example_is_a_valid_latched_rule() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "rules.md").read_text("utf-8")
    section = docs.split("### Latched alarms: until someone acknowledges", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules, _ = load_rules_text("receivers: {kitchen-staff: ['json://127.0.0.1/x']}\nrules:\n" + example, "rules.md")
    assert rules.rules[0].spec.latch is True and rules.rules[0].name == "freezer-warm"
