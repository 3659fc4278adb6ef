"""Fixtures: private Mosquitto / influxd / VictoriaMetrics, and checks for leftovers."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# The helpers' asserts explain themselves as a conftest's would (before the first import of tests.support).
pytest.register_assert_rewrite("tests.support")

from tests.support.postgres import Postgres  # noqa: E402
from tests.support.services import RUNNING, Influxd, Mosquitto, VictoriaMetrics, child_pids  # noqa: E402

# This machine is shared and noisy: a property test is about correctness, never about speed.
hypothesis_settings.register_profile("vigil", deadline=None, print_blob=True)
hypothesis_settings.load_profile("vigil")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh private Mosquitto for this test; ``.stop()``/``.start()`` for fault tests."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One private influxd for the session (it takes a second or two to start)."""
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxd(influxd_server: Influxd) -> Influxd:
    """The session's influxd, started again if a test stopped it."""
    if not influxd_server.running:
        influxd_server.start()
    return influxd_server


@pytest.fixture
def influx_db(influxd: Influxd) -> str:
    """A fresh database in the private influxd; returns its name."""
    return influxd.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def private_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """An influxd of this test's own, for tests that stop or kill it."""
    server = Influxd(tmp_path / "influxd")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path_factory.mktemp("vm"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One private PostgreSQL for the session (initdb takes a second or two)."""
    server = Postgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def postgres(postgres_server: Postgres) -> Postgres:
    """The session's PostgreSQL, started again if a test stopped it."""
    if not postgres_server.running:
        postgres_server.start()
    return postgres_server


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A fresh database in the private PostgreSQL; returns its postgresql:// URL."""
    return postgres.create_database()


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves threads, child processes or asyncio tasks behind."""
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    yield
    deadline = time.monotonic() + 5
    while True:
        threads = [t for t in set(threading.enumerate()) - threads_before if t.is_alive() and not t.daemon]
        daemon = [t for t in set(threading.enumerate()) - threads_before if t.is_alive() and t.daemon
                  and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
        children = child_pids() - children_before - RUNNING
        if not (threads or daemon or children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not threads, f"test left threads running: {threads}"
    assert not daemon, f"test left daemon threads running: {daemon}"
    assert not children, f"test left child processes running: {children}"


@pytest.fixture(autouse=True)
async def no_pending_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks pending in its event loop."""
    yield
    me = asyncio.current_task()
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    assert not pending, f"test left asyncio tasks pending: {pending}"
