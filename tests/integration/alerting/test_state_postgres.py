"""The engine's state database on a real PostgreSQL: the unit tests of StateDB (tests/unit/alerting/test_state.py)
and of the ledger (tests/unit/alerting/test_ledger.py) run again on a ``postgresql://`` URL; the outbox; appenders
on two connections keep one chain; engines opening one fresh database together; errors name the database without
its password."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from alerting import ledger
from alerting.engine import Engine
from alerting.notify.outbox import OUTBOX_TABLE, Outbox
from alerting.rules import load_rules_text
from alerting.state import StateDB, StateError, immediate_transaction
from alerting.transition import AlertState, Transition
from tests.support.dispatcher import transition
from tests.support.engine import T0, ev, feed
from tests.support.postgres import Postgres
from tests.unit.alerting.test_ledger import (
    test_a_changed_row_is_found,
    test_a_changed_time_is_found,
    test_a_replaced_head_is_found,
    test_a_row_rewritten_with_its_own_hash_breaks_the_next_link,
    test_an_inserted_row_is_found,
    test_an_unknown_kind_and_a_non_finite_number_are_refused,
    test_deleted_last_rows_are_found_against_a_reports_head,
    test_deleted_rows_are_found,
    test_entries_filter_by_key_kind_and_sequence,
    test_rows_chain_from_genesis_and_read_back,
)
from tests.unit.alerting.test_state import (
    test_a_reopened_database_keeps_everything,
    test_a_series_keeps_its_latest_last_seen_and_its_newest_labels,
    test_alerts_are_upserted_and_a_pristine_one_is_deleted,
    test_an_older_alert_table_is_given_the_newer_columns,
    test_learned_state_is_upserted_deleted_and_kept_only_for_live_rules,
    test_notes_and_firings_are_read_from_the_ledger,
)
from vigil.core.clock import ManualClock
from vigil.core.sqldb import PgConnection, connect

pytestmark = pytest.mark.integration

__all__ = [  # the unit tests this module runs again, on PostgreSQL
    "test_a_changed_row_is_found",
    "test_a_changed_time_is_found",
    "test_a_reopened_database_keeps_everything",
    "test_a_replaced_head_is_found",
    "test_a_row_rewritten_with_its_own_hash_breaks_the_next_link",
    "test_a_series_keeps_its_latest_last_seen_and_its_newest_labels",
    "test_alerts_are_upserted_and_a_pristine_one_is_deleted",
    "test_an_inserted_row_is_found",
    "test_an_older_alert_table_is_given_the_newer_columns",
    "test_an_unknown_kind_and_a_non_finite_number_are_refused",
    "test_deleted_last_rows_are_found_against_a_reports_head",
    "test_deleted_rows_are_found",
    "test_entries_filter_by_key_kind_and_sequence",
    "test_learned_state_is_upserted_deleted_and_kept_only_for_live_rules",
    "test_notes_and_firings_are_read_from_the_ledger",
    "test_rows_chain_from_genesis_and_read_back",
]


@pytest.fixture
def target(pg_url: str) -> str:
    """test_state.py's database: a fresh PostgreSQL database."""
    return pg_url


@pytest.fixture
def conn(pg_url: str) -> Iterator[PgConnection]:
    """test_ledger.py's connection: to a fresh PostgreSQL database, with the ledger table."""
    c = connect(pg_url)
    assert isinstance(c, PgConnection)
    ledger.create(c)
    ledger.create(c)  # idempotent
    yield c
    c.close()


def test_two_connections_appending_at_once_keep_one_chain(pg_url: str) -> None:
    dbs = [StateDB(pg_url), StateDB(pg_url)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def appender(db: StateDB, name: str) -> None:
        try:
            start.wait(timeout=30)
            for i in range(200):
                with db.transaction() as c:
                    ledger.append(c, "told", name, {"i": i, "receiver": name, "kind": "firing"}, 1000.0 + i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(db, f"engine-{n}")) for n, db in enumerate(dbs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    rows = ledger.entries(dbs[0].conn)
    assert [r.seq for r in rows] == list(range(1, 401))
    assert ledger.verify(dbs[0].conn) == []
    for name in ("engine-0", "engine-1"):  # each appender's rows in its own order
        assert [r.body["i"] for r in rows if r.key == name] == list(range(200))
    switches = sum(a.key != b.key for a, b in zip(rows, rows[1:]))
    print(f"appenders interleaved: {switches} switches between them in 400 rows")
    for db in dbs:
        db.close()


def test_a_row_is_appended_only_inside_a_transaction_on_postgresql(conn: PgConnection) -> None:
    with pytest.raises(ValueError, match="inside a transaction"):
        ledger.append(conn, "fired", "k", {}, 1.0)
    assert ledger.head(conn) == (0, ledger.GENESIS)


def test_engines_opening_one_fresh_database_together_all_succeed(pg_url: str) -> None:
    opened: list[StateDB] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait(timeout=30)
            db = StateDB(pg_url)
            opened.append(db)
            Outbox(db.conn).create_tables()  # as service.py does, outside a transaction
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(opened) == 4
    for db in opened:
        db.close()


def test_an_engine_on_postgresql_fires_rolls_back_a_failed_commit_and_restores_after_a_restart(pg_url: str) -> None:
    class Failing(Outbox):
        fail = False

        def enqueue(self, t: Transition) -> None:
            super().enqueue(t)
            if self.fail:
                raise OSError("gone")

    rules, _ = load_rules_text("rules: [{name: hot, above: 30, latch: true}]", "t.yaml")
    clock = ManualClock(T0)
    db = StateDB(pg_url)
    sink = Failing(db.conn)
    sink.create_tables()
    e = Engine(rules, state=db, sink=sink, clock=clock)
    feed(e, clock, 35.0)
    clock.advance(20)
    sink.fail = True
    with pytest.raises(OSError):
        feed(e, clock, 20.0)  # the clear's commit fails: its state, ledger row and outbox row are rolled back
    db.close()
    db2 = StateDB(pg_url)
    e2 = Engine(rules, state=db2, sink=Outbox(db2.conn), clock=clock)
    assert e2.alerts["hot/freezer-1/t0/temperature"].state == AlertState.FIRING
    e2.on_event(ev(20.0, T0 + 20))  # the broker delivers the reading again
    e2.on_event(ev(20.0, T0 + 20))
    assert [x.kind for x in ledger.entries(db2.conn)] == ["fired", "cleared"] and ledger.verify(db2.conn) == []
    states = [Transition.from_json(r[0]).state for r in db2.conn.execute(
        f"SELECT body FROM {OUTBOX_TABLE} ORDER BY seq").fetchall()]
    assert states == [AlertState.FIRING, AlertState.CLEARED]
    assert [(r.rule, r.state) for r in db2.load_alerts()] == [("hot", AlertState.CLEARED)]
    db2.close()


# -- the outbox ---------------------------------------------------------------------------------------------------

def _outbox(pg_url: str) -> tuple[PgConnection, Outbox]:
    c = connect(pg_url)
    assert isinstance(c, PgConnection)
    outbox = Outbox(c)
    outbox.create_tables()
    outbox.create_tables()  # safe on every start
    return c, outbox


def test_enqueue_joins_the_callers_transaction_and_is_idempotent(pg_url: str) -> None:
    c, outbox = _outbox(pg_url)
    other = connect(pg_url)
    t = transition(labels={"site": "kitchen", "odd": "ü {{x}} ?%s"}, message="x" * 50_000)
    with pytest.raises(RuntimeError), immediate_transaction(c):
        outbox.enqueue(t)
        assert other.execute(f"SELECT count(*) FROM {OUTBOX_TABLE}").fetchone() == (0,)  # not committed yet
        raise RuntimeError("the engine's state change failed: its notification goes with it")
    assert other.execute(f"SELECT count(*) FROM {OUTBOX_TABLE}").fetchone() == (0,)
    for _ in range(2):
        with immediate_transaction(c):
            outbox.enqueue(t)
            outbox.enqueue(t)
    rows = other.execute(f"SELECT seq, id, key, body, done FROM {OUTBOX_TABLE}").fetchall()
    assert [(r[1], r[2], r[4]) for r in rows] == [(t.id, "freezer-warm/freezer-1/t0/temperature", 0)]
    assert Transition.from_json(rows[0][3]) == t
    c.close()
    other.close()


def test_outbox_rows_become_visible_in_seq_order(pg_url: str) -> None:
    """Two engines enqueue at once; a dispatcher reading ``seq > after`` (as alerting/notify/state.py does) sees
    every row: a row never commits behind one already read."""
    conns = [_outbox(pg_url) for _ in range(2)]
    reader = connect(pg_url)
    ids = [[transition().id for _ in range(100)] for _ in range(2)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def engine(n: int) -> None:
        c, outbox = conns[n]
        try:
            start.wait(timeout=30)
            for i in range(100):
                with immediate_transaction(c):
                    outbox.enqueue(dataclasses.replace(transition(series=f"f{n}/t0/temperature"), id=ids[n][i]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=engine, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    start.wait(timeout=30)
    seen: list[str] = []
    after = 0
    while True:  # until the engines are done and a read after that finds nothing new
        alive = any(t.is_alive() for t in threads)
        batch = reader.execute(f"SELECT seq, id FROM {OUTBOX_TABLE} WHERE seq > ? ORDER BY seq", (after,)).fetchall()
        seen += [str(r[1]) for r in batch]
        after = max([after, *(int(r[0]) for r in batch)])
        if not batch and not alive:
            break
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(seen) == sorted(ids[0] + ids[1])  # none skipped, none twice
    for c, _ in conns:
        c.close()
    reader.close()


# -- errors -------------------------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_is_a_state_error_without_the_password() -> None:
    url = f"postgresql://vigil:s3cret-pw@127.0.0.1:{_closed_port()}/vigil"
    with pytest.raises(StateError) as caught:
        StateDB(url)
    text = str(caught.value)
    assert "s3cret-pw" not in text and "s3cret-pw" not in caught.value.path
    assert text.startswith(f"postgresql://vigil:***@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/vigil: ")
    assert "cannot open the alert state database" in text and "refused" in text.lower()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no psycopg traceback


def test_a_wrong_password_and_a_missing_database_are_state_errors_without_the_password(tmp_path: Path) -> None:
    server = Postgres(tmp_path / "pg")  # a server of this test's own, which asks this user for a password
    hba = server.data / "pg_hba.conf"
    hba.write_text("host all alice 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute("CREATE ROLE alice LOGIN PASSWORD 'right-pw'")
            admin.execute("CREATE DATABASE vigil OWNER alice")
        good = f"postgresql://alice:right-pw@127.0.0.1:{server.port}/vigil"
        StateDB(good).close()  # the right password opens it
        for url, why in ((good.replace("right-pw", "wrong-pw"), "password authentication failed"),
                         (good.replace("/vigil", "/nowhere"), 'database "nowhere" does not exist')):
            with pytest.raises(StateError) as caught:
                StateDB(url)
            text = str(caught.value)
            assert "wrong-pw" not in text and "right-pw" not in text and ":***@" in text
            assert why in text, text
    finally:
        server.cleanup()
