"""The private PostgreSQL the engine-failover tests use: it starts, answers, and a database is its test's own."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.postgres import Postgres

pytestmark = pytest.mark.integration


def test_a_private_postgresql_answers_on_loopback_with_a_fresh_database(postgres: Postgres, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_database(), inet_server_addr()::text, inet_server_port()").fetchone()
        assert row is not None
        assert pg_url.endswith("/" + row[0]) and row[1].startswith("127.0.0.1") and row[2] == postgres.port
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
