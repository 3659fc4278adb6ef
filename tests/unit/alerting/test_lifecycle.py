"""Flapping, restarts on the same state file, acknowledge, reload and partitions."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Callable, Optional

import pytest

from alerting.engine import Engine, PartitionLost
from alerting.notify.outbox import Outbox
from alerting.partition import owns, parse_partition
from alerting.rules import load_rules_text
from alerting.state import StateDB
from alerting.transition import AlertState
from tests.support.engine import T0, Recorder, engine, feed
from vigil.core.clock import ManualClock

HOT = """
rules:
  - name: hot
    above: 30
    for: 1m
    flapping: {changes: 4, window: 10m}
"""


def flap(e: Engine, clock: ManualClock, rounds: int) -> None:
    """Each round: hot for 60 s (firing), then cold (resolved): two changes of state, 80 s."""
    for _ in range(rounds):
        feed(e, clock, 35.0)
        clock.advance(60)
        e.tick()
        clock.advance(10)
        feed(e, clock, 20.0)
        clock.advance(10)


def test_flapping_notifies_once_then_is_quiet_until_it_settles() -> None:
    e, sink, clock = engine(HOT)
    flap(e, clock, 3)
    got = [t.state.value for t in sink.items]
    # firing, resolved, firing, then the 4th change within 10m is "flapping"
    assert got == ["firing", "resolved", "firing", "flapping"]
    flaps_at = sink.items[-1].at
    clock.advance(60)
    e.tick()
    assert len(sink.items) == 4  # quiet while flapping
    clock.set(flaps_at + 10 * 60 + 200)
    settled = e.tick()
    assert [(t.previous.value, t.state.value) for t in settled] == [("flapping", "resolved")]
    # the quiet changes went on until T0+230 (resolved); calm for the 10m window after that
    assert settled[0].at == T0 + 230 + 600
    assert flaps_at == T0 + 150


def test_restart_keeps_pending_start_and_does_not_renotify_firing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    clock = ManualClock(T0)
    rules, _ = load_rules_text(textwrap.dedent(HOT), "t.yaml")

    def start() -> tuple[Engine, StateDB]:
        db = StateDB(path)
        outbox = Outbox(db.conn)
        outbox.create_tables()
        return Engine(rules, state=db, sink=outbox, clock=clock), db

    e, db = start()
    feed(e, clock, 35.0, device="a")           # a: pending since T0
    feed(e, clock, 35.0, device="b")
    clock.advance(60)
    e.tick()                                    # b (and a) firing at T0+60
    clock.advance(1)
    feed(e, clock, 35.0, device="c")           # c: pending since T0+61
    db.close()                                  # "crash": nothing but the file survives

    clock.advance(120)                          # c's for: 1m ran out while the engine was down
    e2, db2 = start()
    out = e2.tick()
    assert [(t.state.value, t.series, t.at) for t in out] == [
        ("firing", "c/t0/temperature", T0 + 61 + 60)]  # at its original time
    assert feed(e2, clock, 35.0, device="b") == []       # firing stays firing: nothing sent again
    assert [t.state.value for t in feed(e2, clock, 20.0, device="a")] == ["resolved"]
    db2.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, body FROM notify_outbox ORDER BY seq").fetchall()
    keys = [k for k, _ in rows]
    assert keys == ["hot/a/t0/temperature", "hot/b/t0/temperature", "hot/c/t0/temperature",
                    "hot/a/t0/temperature"]


def test_a_replayed_transition_is_not_enqueued_twice(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    rules, _ = load_rules_text(textwrap.dedent(HOT), "t.yaml")
    ids = []
    for _ in range(2):  # the same history twice, as after a crash before the state commit
        db = StateDB(path)
        outbox = Outbox(db.conn)
        outbox.create_tables()
        with db.transaction():
            db.conn.execute("DELETE FROM alert_state")
        clock = ManualClock(T0)
        e = Engine(rules, state=db, sink=outbox, clock=clock)
        feed(e, clock, 35.0)
        clock.advance(60)
        ids += [t.id for t in e.tick()]
        db.close()
    assert ids[0] == ids[1]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM notify_outbox").fetchone()[0] == 1


def test_acknowledge_marks_the_alert_and_resolve_clears_it() -> None:
    e, _sink, clock = engine("rules: [{name: hot, above: 30}]")
    assert e.acknowledge("hot", "freezer-1/t0/temperature", "ana") is None  # nothing firing
    feed(e, clock, 35.0)
    done = e.acknowledge("hot", "freezer-1/t0/temperature", "ana", "on it")
    assert done is not None and done.record.acked_by == "ana" and done.record.ack_comment == "on it"
    feed(e, clock, 20.0)
    assert e.alerts["hot/freezer-1/t0/temperature"].acked_by is None


def test_reload_keeps_state_of_remaining_rules_and_drops_removed_ones() -> None:
    e, sink, clock = engine("rules: [{name: hot, above: 30}, {name: cold, below: 0}]")
    feed(e, clock, 35.0)
    feed(e, clock, -5.0, device="d2")
    new, _ = load_rules_text("rules: [{name: hot, above: 30}]", "t.yaml")
    dropped, resolved = e.reload(new)
    assert dropped == ["cold/d2/t0/temperature"]
    assert [(t.rule, t.state.value) for t in resolved] == [("cold", "resolved")]
    assert sink.states()[-1] == ("resolved", "d2/t0/temperature")
    assert e.alerts["hot/freezer-1/t0/temperature"].state == AlertState.FIRING
    assert feed(e, clock, 36.0) == []  # not notified again


def test_partitions_split_series_and_each_instance_evaluates_only_its_own() -> None:
    ids = [f"d{i}/t0/temperature" for i in range(200)]
    owners = [[owns(s, (i, 3)) for i in range(3)] for s in ids]
    assert all(sum(o) == 1 for o in owners)
    assert all(any(o[i] for o in owners) for i in range(3))
    assert parse_partition("1/3") == (1, 3)
    fired = 0
    for i in range(3):
        e, sink, clock = engine("rules: [{name: hot, above: 30}]", partition=(i, 3))
        for d in range(30):
            feed(e, clock, 35.0, device=f"d{d}")
        fired += len(sink.items)
    assert fired == 30


def test_nodata_after_restart_counts_from_the_last_reading_before_it(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    clock = ManualClock(T0)
    rules, _ = load_rules_text("rules: [{name: silent, nodata: 10m}]", "t.yaml")
    db = StateDB(path)
    e = Engine(rules, state=db, sink=None, clock=clock)
    feed(e, clock, 1.0)
    e.flush()
    db.close()
    clock.advance(3600)  # the engine was down for an hour; the series said nothing since
    db2 = StateDB(path)
    sink = Recorder()
    e2 = Engine(rules, state=db2, sink=sink, clock=clock)
    fired = e2.tick()
    assert [(t.state.value, t.at) for t in fired] == [("firing", T0 + 600)]
    db2.close()


async def test_windows_are_refilled_from_the_store_after_a_restart(tmp_path: Path) -> None:
    from alerting.storetrigger import seed_windows
    from vigil.core.event import Event
    from vigil.core.stores import MemoryStore

    path = tmp_path / "alerts.db"
    clock = ManualClock(T0 - 700)
    rules, _ = load_rules_text("rules: [{name: avg-warm, aggregate: {fn: avg, window: 10m, above: 5}}]", "t.yaml")
    store = MemoryStore()
    store.write([Event("freezer-1", "t0", "temperature", 8.0, T0 - 600 + 60 * i) for i in range(1, 10)])
    db = StateDB(path)
    e = Engine(rules, state=db, clock=clock)
    feed(e, clock, 1.0)       # the series is known from before the restart
    e.flush()
    db.close()
    clock.set(T0)
    db2 = StateDB(path)
    sink = Recorder()
    e2 = Engine(rules, state=db2, sink=sink, clock=clock)
    await seed_windows(e2, store, clock)
    clock.advance(1)
    fired = feed(e2, clock, 0.0)  # alone it would average 0; with the history, (9*8 + 0) / 10
    assert [t.state.value for t in fired] == ["firing"]
    assert fired[0].value == 7.2
    db2.close()


async def test_store_rule_pending_fires_on_a_later_run_at_its_due_time() -> None:
    from alerting.storetrigger import store_snapshots
    from vigil.core.event import Event
    from vigil.core.stores import MemoryStore

    e, _sink, clock = engine("""
    rules:
      - {name: live-avg, aggregate: {fn: avg, window: 10m, above: 100}}
      - name: stored-avg
        source: store
        every: 1m
        aggregate: {fn: avg, window: 10m, above: 5}
        for: 2m
    """)
    feed(e, clock, 1.0)  # a live series with its own window
    store = MemoryStore()
    store.write([Event("freezer-1", "t0", "temperature", 8.0, T0 - 60 * i) for i in range(1, 5)])
    c = e.index.store_rules[0]
    out = []
    for _ in range(4):
        for data in store_snapshots(store, c, clock.now(), (0, 1)):
            out += e.evaluate_series(c, data, clock.now())
        clock.advance(60)
    assert [(t.state.value, t.at - T0) for t in out] == [("pending", 0.0), ("firing", 120.0)]
    assert e.series["freezer-1/t0/temperature"].value == 1.0  # the live series was left alone
    assert len(e.series["freezer-1/t0/temperature"].samples or ()) == 1


def test_an_alert_pending_when_flapping_settles_still_fires_after_its_for() -> None:
    e, sink, clock = engine(HOT)
    flap(e, clock, 2)
    assert [t.state.value for t in sink.items] == ["firing", "resolved", "firing", "flapping"]
    clock.set(T0 + 150 + 600 - 30)
    feed(e, clock, 35.0)            # pending again, 30 s before the flapping settles
    clock.advance(30)
    assert [(t.previous.value, t.state.value) for t in e.tick()] == [("flapping", "resolved")]
    clock.advance(30)
    fired = e.tick()
    assert [(t.state.value, t.at) for t in fired] == [("firing", T0 + 150 + 600 - 30 + 60)]


def test_an_alert_whose_rule_was_removed_while_down_is_resolved_once(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    clock = ManualClock(T0)
    both, _ = load_rules_text("rules: [{name: hot, above: 30}, {name: cold, below: 0}]", "t.yaml")
    db = StateDB(path)
    e = Engine(both, state=db, clock=clock)
    feed(e, clock, -5.0)
    db.close()
    only_hot, _ = load_rules_text("rules: [{name: hot, above: 30}]", "t.yaml")
    for expected in ([("resolved", "cold: the rule was removed; freezer-1/t0/temperature is no longer watched")], []):
        db = StateDB(path)
        sink = Recorder()
        e = Engine(only_hot, state=db, sink=sink, clock=clock)
        assert [(t.state.value, t.message) for t in sink.items] == expected
        assert e.alerts == {}
        db.close()


def test_alerts_resolved_long_ago_are_forgotten(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "alerts.db")
    clock = ManualClock(T0)
    rules, _ = load_rules_text("rules: [{name: hot, above: 30, flapping: false}]", "t.yaml")
    e = Engine(rules, state=db, clock=clock)
    feed(e, clock, 35.0, device="a")
    feed(e, clock, 20.0, device="a")
    feed(e, clock, 35.0, device="b")
    clock.advance(86401)
    assert e.prune() == 1
    assert sorted(e.alerts) == ["hot/b/t0/temperature"]
    assert [r.key for r in db.load_alerts()] == ["hot/b/t0/temperature"]
    assert [t.state.value for t in feed(e, clock, 35.0, device="a")] == ["firing"]  # a new alert as usual
    db.close()


def _hot_on_file(path: Path, fence: Optional[Callable[[object], None]] = None
                 ) -> tuple[Engine, StateDB, ManualClock]:
    """An engine on a state file, its reading hot for 60 s: its ``for: 1m`` timer is due."""
    clock = ManualClock(T0)
    rules, _ = load_rules_text(textwrap.dedent(HOT), "t.yaml")
    db = StateDB(path)
    outbox = Outbox(db.conn)
    outbox.create_tables()
    e = Engine(rules, state=db, sink=outbox, clock=clock, fence=fence)
    feed(e, clock, 35.0)
    clock.advance(60)
    return e, db, clock


def test_a_commit_that_failed_goes_into_the_next_and_the_firing_is_told(tmp_path: Path) -> None:
    """A state file that refused a commit once (locked, disk full) as a timer fired: the engine's memory says firing,
    so the transition and its ledger rows must go into the next commit, or the alert would be saved firing with no
    message ever sent (and its resolve not sent either: nobody had been told)."""
    path = tmp_path / "alerts.db"
    e, db, clock = _hot_on_file(path)
    save = db.save_alerts

    def refuse_once(records: object) -> None:
        db.save_alerts = save  # type: ignore[method-assign]
        raise sqlite3.OperationalError("database or disk is full")

    db.save_alerts = refuse_once  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        e.tick()
    later = feed(e, clock, 35.0)  # the next commit carries the one that failed
    assert [(t.state.value, t.at) for t in later] == [("firing", T0 + 60)]
    assert [t.state.value for t in feed(e, clock, 20.0)] == ["resolved"]
    db.close()
    with sqlite3.connect(path) as conn:
        states = [json.loads(b)["state"] for (b,) in conn.execute("SELECT body FROM notify_outbox ORDER BY seq")]
        kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger ORDER BY seq")]
    assert states == ["firing", "resolved"]
    assert kinds.count("fired") == 1 and kinds.count("resolved") == 1


def test_a_fenced_commit_leaves_nothing_for_the_last_flush_to_save_alone(tmp_path: Path) -> None:
    """A shared state's engine whose commit was fenced (its lease had run out while the database was away) stops;
    on its way out it flushes, and its lease may be its own again by then (renewed at the same epoch): that flush
    must carry the fenced commit's transition, its outbox row and ledger row, not save the firing state alone
    (issue 18: a firing never told, nor its resolve, with PostgreSQL stopped under load)."""
    path = tmp_path / "alerts.db"
    lease = {"ours": True}

    def fence(conn: object) -> None:
        if not lease["ours"]:
            raise PartitionLost("partition 0/1 is no longer this engine's (test)")

    e, db, _ = _hot_on_file(path, fence)
    lease["ours"] = False
    with pytest.raises(PartitionLost):
        e.tick()  # the timer fires; the commit is fenced
    lease["ours"] = True  # renewed at the same epoch
    e.flush(learned=True)  # engine_parts' last word
    db.close()
    with sqlite3.connect(path) as conn:
        states = [json.loads(b)["state"] for (b,) in conn.execute("SELECT body FROM notify_outbox ORDER BY seq")]
        kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger ORDER BY seq")]
        saved = conn.execute("SELECT state FROM alert_state").fetchall()
    assert saved == [("firing",)]
    assert states == ["firing"]
    assert kinds.count("fired") == 1
