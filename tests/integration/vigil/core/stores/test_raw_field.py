"""The value before calibration (``Event.raw``) stored as a second field beside ``value``, in every real store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Influxd, VictoriaMetrics
from vigil.core.event import Event, SeriesKey
from vigil.core.stores import EventsRefused, MemoryStore, Point, Store, open_store
from vigil.core.stores.influx2 import Influx2Store
from vigil.core.stores.sqlite import SqliteStore
from vigil.core.urls import parse_store_url

T0 = 1_700_002_800.0
SERIES = SeriesKey("temperature", "freezer-1", "t0")


def ev(value: float, ts: float, raw: float | None = None, metric: str = "temperature") -> Event:
    return Event(device="freezer-1", sensor="t0", metric=metric, value=value, ts=ts, unit="°C", raw=raw)


@pytest.fixture(params=["influxdb1", "sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "influxdb1":
        influxd: Influxd = request.getfixturevalue("influxd")
        s = open_store(influxd.url(request.getfixturevalue("influx_db")))
    elif request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/vigil.db")
    else:
        s = MemoryStore()
    yield s
    s.close()


def test_raw_is_stored_beside_value_and_queries_keep_returning_value(store: Store) -> None:
    store.write([ev(-18.0, T0), ev(-17.6, T0 + 10, raw=-17.2), ev(-17.4, T0 + 20, raw=-17.0)])
    assert store.query(SERIES, T0, T0 + 30) == [Point(T0, -18.0), Point(T0 + 10, -17.6), Point(T0 + 20, -17.4)]
    # only the calibrated readings have a raw value
    assert store.query(SERIES, T0, T0 + 30, field="raw") == [Point(T0 + 10, -17.2), Point(T0 + 20, -17.0)]
    assert store.query(SERIES, T0, T0 + 60, bucket=60, field="raw") == [Point(T0, pytest.approx(-17.1))]
    assert [e.value for e in store.latest()] == [-17.4]
    with pytest.raises(ValueError, match="value or raw"):
        store.query(SERIES, T0, T0 + 30, field="value; DROP")  # type: ignore[arg-type]


def test_a_raw_value_no_store_can_hold_is_refused_alone(store: Store) -> None:
    with pytest.raises(EventsRefused, match="raw value"):
        store.write([ev(1.0, T0, raw=float("nan")), ev(2.0, T0 + 1, raw=2.5)])
    assert store.query(SERIES, T0, T0 + 10, field="raw") == [Point(T0 + 1, 2.5)]


def test_influxd_holds_raw_as_a_float_field(influxd: Influxd, influx_db: str) -> None:
    with open_store(influxd.url(influx_db)) as s:
        s.write([ev(4.6, T0, raw=5.0)])
    body = influxd.query('SELECT "value", "raw" FROM "temperature"', influx_db)
    series = body["results"][0]["series"][0]
    assert series["columns"] == ["time", "value", "raw"] and series["values"][0][1:] == [4.6, 5.0]
    url = parse_store_url(f"influxdb2://127.0.0.1:{influxd.port}/{influx_db}?org=home",
                          env={"VIGIL_INFLUXDB_TOKEN": "t0ken"})
    with Influx2Store(url) as s2:  # the 2.x store reads the same field by InfluxQL
        assert s2.query(SERIES, T0, T0 + 1, field="raw") == [Point(T0, 5.0)]


def test_influx2_writes_raw_through_influxdb_client(victoria_metrics: VictoriaMetrics) -> None:
    url = parse_store_url(f"influxdb2://127.0.0.1:{victoria_metrics.port}/vigil?org=home",
                          env={"VIGIL_INFLUXDB_TOKEN": "t0ken"})
    with Influx2Store(url) as s:
        s.write([ev(412.0, T0, raw=400.0, metric="co2")])  # a metric of its own: the server is shared
    rows = victoria_metrics.export('{__name__="co2_raw"}')
    assert [r["values"] for r in rows] == [[400.0]]


def test_a_sqlite_file_of_before_calibration_gains_the_raw_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the schema of issue 15, with a reading in it
        db.executescript(
            "CREATE TABLE readings (metric TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL, "
            "ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (metric, device, sensor, ts)) WITHOUT ROWID;"
            f"INSERT INTO readings VALUES ('temperature', 'freezer-1', 't0', {int(T0 * 1e6)}, -18.0);")
    db.close()
    with SqliteStore(path) as s:
        s.write([ev(-17.6, T0 + 10, raw=-17.2)])
        assert s.query(SERIES, T0, T0 + 30) == [Point(T0, -18.0), Point(T0 + 10, -17.6)]
        assert s.query(SERIES, T0, T0 + 30, field="raw") == [Point(T0 + 10, -17.2)]
    with SqliteStore(path) as s:  # opened again: migrated once
        assert len(s.query(SERIES, T0, T0 + 30)) == 2
