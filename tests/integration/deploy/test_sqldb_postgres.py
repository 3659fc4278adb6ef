"""vigil.core.sqldb's PostgreSQL connection against a real private PostgreSQL: sqlite3's interface and placeholders."""

from __future__ import annotations

import pytest

from vigil.core.sqldb import PgConnection, connect, dialect, is_postgres, redact

pytestmark = pytest.mark.integration


def test_sqlite_statements_run_unchanged_on_postgresql(pg_url: str) -> None:
    conn = connect(pg_url)
    assert isinstance(conn, PgConnection) and dialect(conn) == "postgresql"
    conn.executescript("CREATE TABLE t (k TEXT PRIMARY KEY, v DOUBLE PRECISION); CREATE TABLE u (x INTEGER)")
    conn.execute("BEGIN IMMEDIATE")
    assert conn.in_transaction
    conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1.5), ("b%", 2.0)])
    conn.execute("INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", ("a", 3.0))
    conn.execute("COMMIT")
    assert not conn.in_transaction
    assert conn.execute("SELECT k, v FROM t WHERE k LIKE 'b%' OR k = ? ORDER BY k", ("a",)).fetchall() == [
        ("a", 3.0), ("b%", 2.0)]
    conn.execute("BEGIN")
    conn.execute("DELETE FROM t")
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert conn.executemany("INSERT INTO u VALUES (?)", []).rowcount in (-1, 0)  # nothing to insert: no statement
    conn.close()


def test_a_state_setting_is_a_file_or_a_postgresql_url() -> None:
    assert is_postgres("postgresql://vigil@db/vigil") and is_postgres(" POSTGRES://x/y")
    assert not is_postgres("/var/lib/vigil/alerting.db") and not is_postgres("state.db")
    assert redact("postgresql://vigil:s3cret@db:5433/vigil") == "postgresql://vigil:***@db:5433/vigil"
    assert redact("postgresql://vigil@db/vigil") == "postgresql://vigil@db/vigil"
    assert redact("/var/lib/vigil/alerting.db") == "/var/lib/vigil/alerting.db"


def test_a_connection_gives_up_on_a_silent_database_within_seconds_unless_the_url_says_otherwise(pg_url: str) -> None:
    conn = connect(pg_url)
    assert isinstance(conn, PgConnection)
    # libpq's own settings of the connection (its socket's), as the client holds them
    params = conn._conn.info.get_parameters()
    assert (params["keepalives_idle"], params["tcp_user_timeout"], params["connect_timeout"]) == ("5", "10000", "10")
    assert conn.execute("SHOW application_name").fetchone() == ("vigil",)
    conn.close()
    mine = connect(pg_url + "?keepalives_idle=7&application_name=mine")
    assert isinstance(mine, PgConnection) and mine._conn.info.get_parameters()["keepalives_idle"] == "7"
    assert mine.execute("SHOW application_name").fetchone() == ("mine",)
    mine.close()
