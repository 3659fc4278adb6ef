"""The engine's state database (alerting/state.py) on its own: alerts, series, learned state and the ledger's notes
written and read back, an older table given its new columns, a reopened database keeping all of it.

``target`` is an SQLite file here; tests/integration/alerting/test_state_postgres.py runs the same tests with a
``postgresql://`` URL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting import ledger, state
from alerting.conditions import SeriesData
from alerting.state import AlertRecord, StateDB
from alerting.transition import AlertState
from vigil.core import sqldb


@pytest.fixture
def target(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "alerts.db")


def test_alerts_are_upserted_and_a_pristine_one_is_deleted(target: str) -> None:
    db = StateDB(target)
    firing = AlertRecord("hot", "a/t0/temperature", AlertState.FIRING, AlertState.FIRING, 1700000000.25,
                         firing_since=1700000000.25, value=31.123456789, changes=[1.5, 2.5], peak=33.0,
                         episode=1700000000.25)
    other = AlertRecord("hot", "b/t0/temperature", AlertState.PENDING, AlertState.PENDING, 5.0, pending_since=5.0)
    with db.transaction():
        db.save_alerts([firing, other])
    firing.state = firing.underlying = AlertState.CLEARED
    firing.acked_by, firing.ack_comment, firing.acked_at, firing.ended = "ana", "door shut", 9.0, 8.0
    with db.transaction():
        db.save_alerts([firing, AlertRecord("hot", "b/t0/temperature")])  # b back to ok: its row goes
    assert db.load_alerts() == [firing]  # doubles round-trip exactly (REAL: DOUBLE PRECISION on PostgreSQL)
    db.close()


def test_a_series_keeps_its_latest_last_seen_and_its_newest_labels(target: str) -> None:
    db = StateDB(target)
    with db.transaction():
        db.save_series([SeriesData("a", "d", "s", "t", (("site", "x"),), last_seen=100.5),
                        SeriesData("b", "d", "s2", "t", last_seen=50.0), SeriesData("never", "d", "s3", "t")])
    with db.transaction():  # an older last_seen (a late reading) does not move it back
        db.save_series([SeriesData("a", "d", "s", "t", (("site", "y"),), last_seen=90.0),
                        SeriesData("b", "d", "s2", "t", last_seen=60.25)])
    assert sorted(db.load_series()) == [("a", "d", "s", "t", {"site": "y"}, 100.5),
                                        ("b", "d", "s2", "t", {}, 60.25)]
    db.close()


def test_learned_state_is_upserted_deleted_and_kept_only_for_live_rules(target: str) -> None:
    db = StateDB(target)
    with db.transaction():
        db.save_learned([("r1/a", "r1", "a", "v1"), ("r2/a", "r2", "a", "w1"), ("r3/a", "r3", "a", "z1")])
    with db.transaction():
        db.save_learned([("r1/a", "r1", "a", "v2"), ("r2/a", "r2", "a", None)])
    db.save_learned([])
    assert sorted(db.load_learned()) == [("r1/a", "v2"), ("r3/a", "z1")]
    db.keep_learned(["r3", "gone"])
    assert db.load_learned() == [("r3/a", "z1")]
    db.keep_learned([])  # no rule left
    assert db.load_learned() == []
    db.close()


def test_notes_and_firings_are_read_from_the_ledger(target: str) -> None:
    db = StateDB(target)
    with db.transaction() as conn:
        ledger.append(conn, "fired", "hot/a", {"since": 1.0, "value": 31.0}, 1.0)
        for i in range(4):
            ledger.append(conn, "note", "hot/a", {"id": f"n{i}", "by": "ana", "text": f"note {i} ✓", "at": 10.0 + i},
                          10.0 + i)
        ledger.append(conn, "note", "hot/b", {"id": "nb", "by": "bo", "text": "b", "at": 20.0}, 20.0)
    assert db.has_fired("hot/a") and not db.has_fired("hot/b")
    assert db.has_note("hot/a", "n2") and not db.has_note("hot/a", "nb") and not db.has_note("hot/a", "n9")
    assert db.notes("hot/a", since=11.0, limit=2) == [{"by": "ana", "text": "note 2 ✓", "at": 12.0},
                                                      {"by": "ana", "text": "note 3 ✓", "at": 13.0}]
    assert ledger.verify(db.conn) == []
    db.close()


def test_a_reopened_database_keeps_everything(target: str) -> None:
    db = StateDB(target)
    rec = AlertRecord("hot", "a/t0/temperature", AlertState.FIRING, AlertState.FIRING, 3.0, firing_since=3.0)
    with db.transaction() as conn:
        db.save_alerts([rec])
        db.save_learned([("hot/a/t0/temperature", "hot", "a/t0/temperature", "{}")])
        ledger.append(conn, "fired", rec.key, {"since": 3.0}, 3.0)
    db.checkpoint()
    db.close()
    again = StateDB(target)
    assert again.load_alerts() == [rec]
    assert again.load_learned() == [("hot/a/t0/temperature", "{}")]
    assert [e.kind for e in ledger.entries(again.conn)] == ["fired"] and ledger.verify(again.conn) == []
    again.close()


def test_an_older_alert_table_is_given_the_newer_columns(target: str) -> None:
    if not sqldb.is_postgres(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    conn = sqldb.connect(target)
    old = "\n".join(line for line in state._SCHEMA.split(";")[0].splitlines()
                    if not line.strip().startswith(tuple(state._ADDED_COLUMNS)))
    old = old.replace("last_transition TEXT,", "last_transition TEXT")
    conn.executescript(state._pg(old) if sqldb.is_postgres(target) else old)
    conn.execute("INSERT INTO alert_state (key, rule, series, state, underlying, state_since) VALUES (?,?,?,?,?,?)",
                 ("hot/a", "hot", "a", "firing", "firing", 2.0))
    conn.close()
    db = StateDB(target)
    assert db.load_alerts() == [AlertRecord("hot", "a", AlertState.FIRING, AlertState.FIRING, 2.0)]
    rec = AlertRecord("hot", "a", AlertState.FIRING, AlertState.FIRING, 2.0, peak=40.0, episode=2.0, acked_at=5.0)
    with db.transaction():
        db.save_alerts([rec])
    db.close()
    again = StateDB(target)  # opened again: the columns are there, nothing is added twice
    assert again.load_alerts() == [rec]
    again.close()
