"""The ledger (alerting/ledger.py): rows chained by hash; a row changed, deleted or inserted afterwards is found
where it happened; a report's head must still be there; entries filtered by key, kind and sequence."""

from __future__ import annotations

import json
import sqlite3

import pytest

from alerting import ledger
from alerting.state import immediate_transaction


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    ledger.create(c)
    ledger.create(c)  # idempotent
    return c


def fill(conn: sqlite3.Connection) -> None:
    with immediate_transaction(conn):
        ledger.append(conn, "fired", "hot/a/t0/temperature", {"since": 1.0, "value": 35.5, "unit": "°C"}, 1.0)
        ledger.append(conn, "fired", "hot/b/t0/temperature", {"since": 2.0, "value": 31.0}, 2.0)
        ledger.append(conn, "acked", "hot/a/t0/temperature", {"by": "ana", "comment": "é ✓"}, 3.0)
        ledger.append(conn, "note", "hot/a/t0/temperature", {"id": "n1", "by": "ana", "text": "moved"}, 4.0)
        ledger.append(conn, "resolved", "hot/a/t0/temperature", {"since": 1.0, "ended": 2.5}, 5.0)


def test_rows_chain_from_genesis_and_read_back(conn: sqlite3.Connection) -> None:
    assert ledger.head(conn) == (0, ledger.GENESIS)
    assert ledger.verify(conn) == []
    fill(conn)
    rows = ledger.entries(conn)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev == ledger.GENESIS
    assert all(b.prev == a.hash for a, b in zip(rows, rows[1:]))
    assert rows[2].body == {"by": "ana", "comment": "é ✓"}
    assert ledger.head(conn) == (5, rows[-1].hash)
    assert ledger.verify(conn) == []
    assert ledger.verify(conn, upto=3, upto_hash=rows[2].hash) == []


def test_entries_filter_by_key_kind_and_sequence(conn: sqlite3.Connection) -> None:
    fill(conn)
    a = "hot/a/t0/temperature"
    assert [r.kind for r in ledger.entries(conn, keys=[a])] == ["fired", "acked", "note", "resolved"]
    assert [r.key for r in ledger.entries(conn, kinds=["fired"])] == [a, "hot/b/t0/temperature"]
    assert [r.seq for r in ledger.entries(conn, keys=[a], kinds=["fired", "note"])] == [1, 4]
    assert [r.seq for r in ledger.entries(conn, upto=2)] == [1, 2]
    assert ledger.entries(conn, keys=[]) == [] and ledger.entries(conn, kinds=[]) == []


def test_an_unknown_kind_and_a_non_finite_number_are_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="unknown ledger kind"):
        ledger.append(conn, "deleted", "k", {}, 1.0)
    with pytest.raises(ValueError):
        ledger.append(conn, "fired", "k", {"value": float("nan")}, 1.0)
    assert ledger.head(conn) == (0, ledger.GENESIS)


def test_a_changed_row_is_found(conn: sqlite3.Connection) -> None:
    fill(conn)
    body = json.loads(conn.execute("SELECT body FROM ledger WHERE seq = 2").fetchone()[0])
    body["value"] = 29.0  # someone makes the excursion look milder
    conn.execute("UPDATE ledger SET body = ? WHERE seq = 2", (ledger.canonical(body),))
    problems = ledger.verify(conn)
    assert problems == ["ledger record 2 (fired hot/b/t0/temperature) was changed after it was written"]


def test_a_changed_time_is_found(conn: sqlite3.Connection) -> None:
    fill(conn)
    conn.execute("UPDATE ledger SET at = at + 3600 WHERE seq = 3")
    assert ledger.verify(conn) == ["ledger record 3 (acked hot/a/t0/temperature) was changed after it was written"]


def test_a_row_rewritten_with_its_own_hash_breaks_the_next_link(conn: sqlite3.Connection) -> None:
    fill(conn)
    seq, at, kind, key, _, prev = conn.execute(
        "SELECT seq, at, kind, key, body, prev FROM ledger WHERE seq = 3").fetchone()
    body = ledger.canonical({"by": "bo", "comment": "é ✓"})
    digest = ledger.entry_hash(seq, at, kind, key, body, prev)  # recomputed: the row itself looks intact
    conn.execute("UPDATE ledger SET body = ?, hash = ? WHERE seq = 3", (body, digest))
    assert ledger.verify(conn) == ["ledger record 4 (note hot/a/t0/temperature) does not follow record 3: "
                                   "a record before it was changed or replaced"]


def test_deleted_rows_are_found(conn: sqlite3.Connection) -> None:
    fill(conn)
    conn.execute("DELETE FROM ledger WHERE seq = 3")
    assert ledger.verify(conn) == ["ledger record 3 missing (deleted)"]
    conn.execute("DELETE FROM ledger WHERE seq = 2")
    assert ledger.verify(conn) == ["ledger records 2-3 missing (deleted)"]


def test_deleted_last_rows_are_found_against_a_reports_head(conn: sqlite3.Connection) -> None:
    fill(conn)
    head_seq, head_hash = ledger.head(conn)
    conn.execute("DELETE FROM ledger WHERE seq >= 4")
    assert ledger.verify(conn) == []  # alone, a shorter chain looks whole
    assert ledger.verify(conn, upto=head_seq, upto_hash=head_hash) == [
        "ledger records 4-5 missing: the report used up to record 5"]


def test_an_inserted_row_is_found(conn: sqlite3.Connection) -> None:
    fill(conn)
    rows = conn.execute("SELECT seq, at, kind, key, body, prev, hash FROM ledger ORDER BY seq").fetchall()
    conn.execute("DELETE FROM ledger")
    forged = None
    for seq, at, kind, key, body, prev, digest in rows:  # a forged acknowledgement slipped in after record 2
        if seq == 3:
            fb = ledger.canonical({"by": "mallory", "comment": ""})
            forged = ledger.entry_hash(3, 2.5, "acked", key, fb, prev)
            conn.execute("INSERT INTO ledger VALUES (3, 2.5, 'acked', ?, ?, ?, ?)", (key, fb, prev, forged))
        conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (seq + 1 if seq >= 3 else seq, at, kind, key, body, prev, digest))
    problems = ledger.verify(conn)
    assert forged is not None
    assert "ledger record 4 (acked hot/a/t0/temperature) does not follow record 3: " \
           "a record before it was changed or replaced" in problems
    assert any("was changed after it was written" in p for p in problems)  # the shifted rows' hashes


def test_a_replaced_head_is_found(conn: sqlite3.Connection) -> None:
    fill(conn)
    _, head_hash = ledger.head(conn)
    conn.execute("UPDATE ledger SET hash = ? WHERE seq = 5", ("f" * 64,))
    problems = ledger.verify(conn, upto=5, upto_hash=head_hash)
    assert "ledger record 5, the last one the report used, is not the one it saw" in problems
