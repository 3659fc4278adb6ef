"""The dispatcher's state on both kinds of state database: an SQLite file and PostgreSQL (vigil.core.sqldb).

Each test runs on an SQLite path and on a fresh database of the private PostgreSQL (``pg_url``). The engine's
tables on PostgreSQL are made with PostgreSQL's DDL by tests/support/dispatcher.py (PG_ENGINE_TABLES), as
alerting/notify/outbox.py and alerting/ledger.py speak SQLite only so far.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.notify import AppriseSender, Dispatcher, RecordingSender
from alerting.notify.cli import run as notify_cli
from alerting.notify.outbox import OUTBOX_TABLE
from alerting.transition import AlertState
from tests.support.dispatcher import START, Harness, config, transition
from tests.support.notify import Receiver
from vigil.core import sqldb

TITLE = "[FIRING critical] freezer-warm freezer-1/t0/temperature"
KEY = "freezer-warm/freezer-1/t0/temperature"
STAFF = "json://127.0.0.1:9/staff"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the state lives: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "alerts.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def h(target: str) -> Iterator[Harness]:
    harness = Harness(target)
    yield harness
    harness.close()


def _rows(target: str, sql: str) -> list[tuple[object, ...]]:
    conn = sqldb.connect(target)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


async def test_silences_are_stored_listed_expired_and_replaced_from_the_rules(target: str) -> None:
    h = Harness(target, config(silences=[{"id": "defrost", "match": {"device": "freezer-1"},
                                          "until": "2026-05-29T00:00:00Z", "by": "rules"}]))
    try:
        sid = h.dispatcher.add_silence({"rule": "fridge-*"}, START + 3600, by="ana", comment="moving")
        assert sorted(s.id for s in h.dispatcher.status().silences) == sorted(["defrost", sid])
        h.enqueue(transition())  # freezer-1: held by the rules file's silence
        await h.at(0)
        await h.at(30)
        assert h.sender.sent == []
        [alert] = h.dispatcher.status().alerts
        assert alert.quiet is not None and "defrost" in alert.quiet
        h.dispatcher.reload(config())  # the rules file's silence is gone; the dashboard's stays
        assert [(s.id, s.by, s.comment) for s in h.dispatcher.status().silences] == [(sid, "ana", "moving")]
        await h.at(60)
        await h.at(90)
        assert h.titles() == [TITLE]
        assert h.dispatcher.expire_silence(sid)
        assert not h.dispatcher.expire_silence(sid)
        assert h.dispatcher.status().silences == ()
        assert _rows(target, 'SELECT id, "by", static FROM notify_silences') == [(sid, "ana", 0)]
    finally:
        h.close()


async def test_told_rows_follow_an_episode_and_a_new_one_starts_afresh(h: Harness, target: str) -> None:
    fired = transition()
    h.enqueue(fired)
    await h.at(0)
    await h.at(30)
    assert h.titles() == [TITLE]
    assert _rows(target, "SELECT key, receiver, told_at FROM notify_told") == [(KEY, "staff", START + 30)]
    assert h.dispatcher.acknowledge(KEY, "ana", "door shut")
    [alert] = h.dispatcher.status().alerts
    assert (alert.told, alert.acked_by, alert.ack_comment) == (("staff",), "ana", "door shut")
    h.enqueue(transition(state=AlertState.RESOLVED, at=START + 600))
    await h.at(600)
    await h.at(900)
    assert h.titles()[-1].startswith("[RESOLVED")
    assert _rows(target, "SELECT * FROM notify_told") == [] and h.dispatcher.status().alerts == ()
    h.enqueue(transition(at=START + 1000))  # a new episode: not acknowledged, told again
    await h.at(1000)
    await h.at(1030)
    [alert] = h.dispatcher.status().alerts
    assert (alert.told, alert.acked_by, alert.fired_at) == (("staff",), None, START + 1000)
    assert h.titles() == [TITLE, h.titles()[1], TITLE]
    ledger = _rows(target, "SELECT kind, key FROM ledger ORDER BY seq")
    assert ledger == [("told", KEY)] * 3


async def test_grouping_one_message_per_group_and_its_interval(h: Harness, target: str) -> None:
    h.enqueue(transition(rule="other"))
    for i, at in enumerate((0, 10, 20)):
        h.enqueue(transition(series=f"freezer-{i}/t0/temperature", at=START + at))
        await h.at(at)
    assert len(_rows(target, "SELECT id FROM notify_pending")) == 4
    await h.at(30)
    assert sorted(h.titles()) == ["[FIRING 3] freezer-warm (3 alerts)",
                                  "[FIRING critical] other freezer-1/t0/temperature"]
    assert sorted(_rows(target, "SELECT receiver, group_key, last_sent FROM notify_groups")) == sorted(
        [("staff", gk, START + 30) for (gk,) in _rows(target, "SELECT DISTINCT group_key FROM notify_groups")])
    assert len(_rows(target, "SELECT * FROM notify_groups")) == 2
    assert _rows(target, "SELECT id FROM notify_pending") == []
    # a resolution of a told alert waits for the group's interval (5m after its last message)
    h.enqueue(transition(series="freezer-0/t0/temperature", state=AlertState.RESOLVED, at=START + 60))
    await h.at(60)
    await h.at(329)
    assert len(h.sender.sent) == 2
    await h.at(330)
    assert h.titles()[-1] == "[RESOLVED critical] freezer-warm freezer-0/t0/temperature"


async def test_escalation_state_survives_restarts_and_is_sent_once(target: str) -> None:
    h = Harness(target, config(escalation=[{"after": "15m", "receivers": ["manager"]}]))
    try:
        h.enqueue(transition())
        await h.at(0)
        await h.at(30)
        h.restart()
        await h.at(15 * 60)
        assert _rows(target, "SELECT escalated FROM notify_alerts") == [("[0]",)]
        h.restart()
        await h.at(15 * 60 + 30)
        h.restart()
        await h.at(3600)
        assert [m.title.split()[0] for m in h.sender.sent] == ["[FIRING", "[ESCALATED"]
        [alert] = h.dispatcher.status().alerts
        assert alert.escalated == ("manager",) and alert.told == ("manager", "staff")
    finally:
        h.close()


async def test_failing_receiver_is_reported_with_its_last_error(target: str) -> None:
    h = Harness(target, sender=RecordingSender(failures={STAFF: 100}))
    try:
        h.enqueue(transition())
        await h.at(0)
        for t in range(30, 30 + 6 * 120, 120):  # retries back off up to 1m (the default's first is 3s)
            await h.at(t)
        [failing] = h.dispatcher.status().failing
        assert (failing.receiver, failing.last_error, failing.waiting) == (
            "staff", "HTTP 503 from the test receiver", 1)
        assert failing.attempts >= h.config.delivery.failing_after
        assert h.dispatcher.status().waiting == 1
    finally:
        h.close()


async def test_queued_outbox_row_reaches_a_person_over_http(target: str, receiver: Receiver) -> None:
    h = Harness(target, config(receivers={"staff": [receiver.url("kitchen")]}))
    h.dispatcher.close()
    d = Dispatcher(target, h.config, AppriseSender(timeout=10), h.clock, rng=random.Random(1))
    try:
        h.enqueue(transition())
        h.clock.set(START)
        await d.step()
        assert receiver.received == []
        h.clock.set(START + 30)
        await d.step()
        [got] = receiver.received
        assert (got["title"], got["path"]) == (TITLE, "/kitchen")
        assert _rows(target, f"SELECT done FROM {OUTBOX_TABLE}") == [(1,)]
        assert _rows(target, "SELECT state, attempts, sent_at FROM notify_deliveries") == [("sent", 1, START + 30)]
    finally:
        d.close()
        h.engine.close()


def test_two_dispatchers_on_one_database_send_each_outbox_row_once(target: str) -> None:
    """Two dispatchers (own connections, own threads) race for N queued rows: each is delivered exactly once."""
    n = 60
    h = Harness(target)
    senders = [h.sender, RecordingSender()]
    dispatchers = [h.dispatcher, Dispatcher(target, h.config, senders[1], h.clock, rng=random.Random(2))]
    errors: list[BaseException] = []

    def passes(d: Dispatcher, count: int, start: threading.Barrier) -> None:
        try:
            start.wait()
            for _ in range(count):
                asyncio.run(d.step())
        except BaseException as exc:  # the test fails with it below
            errors.append(exc)

    def race(count: int) -> None:
        start = threading.Barrier(2)
        threads = [threading.Thread(target=passes, args=(d, count, start)) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads) and errors == []

    try:
        for d in dispatchers:  # each recovers on its first pass, before anything is sent
            asyncio.run(d.step())
        # one rule each: one group, so one message per outbox row
        h.enqueue(*(transition(rule=f"r{i:02d}") for i in range(n)))
        race(3)  # both take from the outbox and queue
        h.clock.set(START + 30)
        race(3)  # both flush the due groups and send
        titles = senders[0].titles() + senders[1].titles()
        assert sorted(titles) == sorted(f"[FIRING critical] r{i:02d} freezer-1/t0/temperature" for i in range(n))
        assert _rows(target, f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE done = 1") == [(n,)]
        assert _rows(target, "SELECT state, count(*), max(attempts) FROM notify_deliveries GROUP BY state") == [
            ("sent", n, 1)]
        assert _rows(target, "SELECT count(*) FROM notify_told") == [(n,)]
        print(f"{target.split(':')[0]}: dispatcher 0 sent {len(senders[0].sent)}, dispatcher 1 {len(senders[1].sent)}")
    finally:
        dispatchers[1].close()
        h.close()


def test_notify_status_reads_the_state(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(target)
    try:
        # status lists silences by the wall clock: this one ends long after the test
        h.dispatcher.add_silence({"device": "freezer-2"}, START + 10 * 365 * 86400, by="ana", comment="defrosting")
        h.enqueue(transition())
        asyncio.run(h.at(0))
        asyncio.run(h.at(30))
    finally:
        h.close()
    assert notify_cli(argparse.Namespace(notify_command="status", state=target)) == 0
    out = capsys.readouterr().out
    assert "1 alert(s) firing" in out and f"{KEY}  since" in out and "told: staff" in out
    assert "1 silence(s)" in out and "by ana: defrosting" in out and "0 message(s) waiting" in out
