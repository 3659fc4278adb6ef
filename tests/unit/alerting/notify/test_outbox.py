"""The engine's side of the outbox: enqueue joins the engine's transaction, and is idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alerting.notify import Outbox
from alerting.notify.outbox import OUTBOX_TABLE
from alerting.transition import Transition
from tests.support.dispatcher import transition


def _rows(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(f"SELECT id, key FROM {OUTBOX_TABLE} ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_enqueue_is_committed_by_the_engine_not_by_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    conn = sqlite3.connect(str(path))
    outbox = Outbox(conn)
    outbox.create_tables()
    conn.commit()
    t = transition()
    outbox.enqueue(t)
    assert _rows(path) == []  # another connection sees nothing before the engine commits
    conn.rollback()  # the engine's state change failed: its notification goes with it
    assert _rows(path) == []
    outbox.enqueue(t)
    conn.commit()
    assert _rows(path) == [(t.id, "freezer-warm/freezer-1/t0/temperature")]
    conn.close()


def test_enqueue_twice_keeps_one_row_and_the_body_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    conn = sqlite3.connect(str(path))
    outbox = Outbox(conn)
    outbox.create_tables()
    outbox.create_tables()  # safe on every start
    t = transition(labels={"site": "kitchen", "odd": "ü {{x}} \u0000"}, message="x" * 50_000)
    outbox.enqueue(t)
    outbox.enqueue(t)
    conn.commit()
    [(body,)] = conn.execute(f"SELECT body FROM {OUTBOX_TABLE}").fetchall()
    assert Transition.from_json(body) == t
    conn.close()
