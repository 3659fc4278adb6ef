"""Every store, against the real thing: write events, read them back raw, bucketed and latest."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Influxd, VictoriaMetrics
from vigil.core.event import Event, SeriesKey
from vigil.core.stores import (
    EventsRefused,
    MemoryStore,
    Point,
    Store,
    StoreRejected,
    StoreUnavailable,
    open_store,
)
from vigil.core.stores.influx2 import Influx2Store
from vigil.core.stores.sqlite import SqliteStore
from vigil.core.urls import parse_store_url

T0 = 1_700_002_800.0  # a whole hour, so 60 and 120 s buckets start at T0
HOSTILE_NAMES = ["a b", "a,b", "a=b", '"q"', "x\ny", "Ω", "it's", "back\\slash\\", "100%", "tab\there"]


def ev(value: float, ts: float, device: str = "freezer-1", sensor: str = "t0", metric: str = "temperature",
       **labels: str) -> Event:
    return Event(device=device, sensor=sensor, metric=metric, value=value, ts=ts, unit="°C",
                 labels=tuple(sorted(labels.items())))


@pytest.fixture(params=["influxdb1", "sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "influxdb1":
        influxd: Influxd = request.getfixturevalue("influxd")
        db = request.getfixturevalue("influx_db")
        s = open_store(influxd.url(db))
    elif request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/vigil.db")
    else:
        s = MemoryStore()
    yield s
    s.close()


SERIES = SeriesKey("temperature", "freezer-1", "t0")


def test_raw_range_is_start_inclusive_end_exclusive(store: Store) -> None:
    store.write([ev(float(i), T0 + i * 10) for i in range(10)])
    points = store.query(SERIES, T0 + 20, T0 + 60)
    assert points == [Point(T0 + 20, 2.0), Point(T0 + 30, 3.0), Point(T0 + 40, 4.0), Point(T0 + 50, 5.0)]


def test_buckets_aggregate_per_minute(store: Store) -> None:
    # 3 minutes of readings every 10 s: values 0..17
    store.write([ev(float(i), T0 + i * 10) for i in range(18)])
    assert store.query(SERIES, T0, T0 + 180, bucket=60) == [
        Point(T0, 2.5), Point(T0 + 60, 8.5), Point(T0 + 120, 14.5)]
    assert [p.value for p in store.query(SERIES, T0, T0 + 180, bucket=60, aggregate="max")] == [5, 11, 17]
    assert [p.value for p in store.query(SERIES, T0, T0 + 180, bucket=60, aggregate="min")] == [0, 6, 12]
    assert [p.value for p in store.query(SERIES, T0, T0 + 180, bucket=60, aggregate="count")] == [6, 6, 6]
    assert [p.value for p in store.query(SERIES, T0, T0 + 180, bucket=120, aggregate="sum")] == [
        sum(range(12)), sum(range(12, 18))]


def test_empty_buckets_are_left_out(store: Store) -> None:
    store.write([ev(1.0, T0), ev(3.0, T0 + 300)])
    assert store.query(SERIES, T0, T0 + 600, bucket=60) == [Point(T0, 1.0), Point(T0 + 300, 3.0)]


def test_writes_are_idempotent(store: Store) -> None:
    batch = [ev(-18.0, T0), ev(-17.5, T0 + 1)]
    store.write(batch)
    store.write(batch)  # a redelivery
    store.write([ev(-17.0, T0 + 1)])  # same series and time: overwrites
    assert store.query(SERIES, T0, T0 + 10) == [Point(T0, -18.0), Point(T0 + 1, -17.0)]


def test_latest_per_series_with_filters(store: Store) -> None:
    store.write([
        ev(-18.0, T0, "freezer-1", "t0"), ev(-17.0, T0 + 5, "freezer-1", "t0"),
        ev(4.0, T0 + 1, "fridge", "t0"), ev(55.0, T0 + 2, "fridge", "h", metric="humidity"),
    ])
    latest = store.latest()
    assert [(e.metric, e.device, e.sensor, e.value, e.ts) for e in latest] == [
        ("humidity", "fridge", "h", 55.0, T0 + 2),
        ("temperature", "freezer-1", "t0", -17.0, T0 + 5),
        ("temperature", "fridge", "t0", 4.0, T0 + 1),
    ]
    assert [e.device for e in store.latest(metric="temperature")] == ["freezer-1", "fridge"]
    assert [(e.metric, e.sensor) for e in store.latest(device="fridge")] == [("humidity", "h"), ("temperature", "t0")]
    assert latest[1].unit == "°C"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_device_names_round_trip(store: Store, name: str) -> None:
    store.write([ev(1.5, T0, device=name, sensor=name), ev(2.5, T0, device="plain")])
    assert store.query(SeriesKey("temperature", name, name), T0, T0 + 1) == [Point(T0, 1.5)]
    assert [(e.device, e.sensor) for e in store.latest(device=name)] == [(name, name)]
    # the neighbour is untouched and no injected series appeared
    assert sorted(e.device for e in store.latest()) == sorted([name, "plain"])


def test_query_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="must be after its start"):
        store.query(SERIES, T0, T0)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        store.query(SERIES, T0, T0 + 1, bucket=1, aggregate="median; DROP")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket must be a positive"):
        store.query(SERIES, T0, T0 + 1, bucket=0)


def test_unknown_series_is_empty(store: Store) -> None:
    store.write([ev(1.0, T0)])
    assert store.query(SeriesKey("temperature", "nobody", "t0"), T0 - 10, T0 + 10) == []
    assert store.latest(device="nobody") == []


def test_influx1_missing_database_is_a_clear_refusal(influxd: Influxd) -> None:
    with open_store(influxd.url("no_such_db")) as s, pytest.raises(StoreRejected, match="database"):
        s.write([ev(1.0, T0)])


def test_influx1_down_is_unavailable_then_recovers(private_influxd: Influxd) -> None:
    db = private_influxd.create_database("vigil")
    with open_store(private_influxd.url(db)) as s:
        s.write([ev(1.0, T0)])
        private_influxd.stop()
        with pytest.raises(StoreUnavailable):
            s.write([ev(2.0, T0 + 1)])
        with pytest.raises(StoreUnavailable):
            s.ping()
        private_influxd.start()
        s.write([ev(2.0, T0 + 1)])
        assert [p.value for p in s.query(SERIES, T0, T0 + 2)] == [1.0, 2.0]


def test_influx2_writes_through_influxdb_client(victoria_metrics: VictoriaMetrics) -> None:
    url = parse_store_url(f"influxdb2://127.0.0.1:{victoria_metrics.port}/vigil?org=home",
                          env={"VIGIL_INFLUXDB_TOKEN": "t0ken"})
    names = ["greenhouse", *HOSTILE_NAMES]
    with Influx2Store(url) as s:
        s.write([ev(20.0 + i, T0 + i, device=n, sensor="t0", site="north") for i, n in enumerate(names)])
    rows = victoria_metrics.export('{__name__="temperature_value"}')
    from vigil.core.stores._lineproto import decode_name

    got = {decode_name(r["metric"]["device"]): (r["values"], r["timestamps"], r["metric"]["site"]) for r in rows}
    assert set(got) == set(names)
    for i, n in enumerate(names):
        assert got[n] == ([20.0 + i], [int((T0 + i) * 1000)], "north")


def test_influx2_reads_by_influxql_on_the_v1_query_endpoint(influxd: Influxd, influx_db: str) -> None:
    with open_store(influxd.url(influx_db)) as writer:
        writer.write([ev(float(i), T0 + i * 10) for i in range(12)])
    url = parse_store_url(f"influxdb2://127.0.0.1:{influxd.port}/{influx_db}?org=home",
                          env={"VIGIL_INFLUXDB_TOKEN": "t0ken"})
    with Influx2Store(url) as s:
        assert [p.value for p in s.query(SERIES, T0, T0 + 120, bucket=60)] == [2.5, 8.5]
        assert [(e.device, e.value) for e in s.latest()] == [("freezer-1", 11.0)]


def test_influx2_unreachable_is_unavailable() -> None:
    from tests.support.services import free_port

    url = parse_store_url(f"influxdb2://127.0.0.1:{free_port()}/b?org=o", env={})
    with Influx2Store(url) as s, pytest.raises(StoreUnavailable):
        s.write([ev(1.0, T0)])


def test_sqlite_prunes_old_readings_and_keeps_new(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "v.db", retention=3600, prune_chunk=7) as s:
        s.write([ev(float(i), T0 + i * 60) for i in range(120)])  # two hours
        deleted = s.prune(now=T0 + 120 * 60)
        assert deleted == 60
        points = s.query(SERIES, T0 - 1, T0 + 7200)
        assert len(points) == 60 and points[0].ts == T0 + 3600
        # latest survives pruning
        assert s.latest()[0].value == 119.0


def test_sqlite_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        SqliteStore(blocker / "sub" / "v.db")


BAD_EVENTS = [ev(float("inf"), T0 + 1), ev(float("nan"), T0 + 2), ev(1e300, T0 + 3), ev(-float("inf"), T0 + 4),
              ev(1.0, 1e12), ev(1.0, float("nan"))]


def _refuses_each_bad_event_alone(store: Store) -> None:
    good = [ev(float(i), T0 + 10 + i) for i in range(5)]
    batch = [good[0], *BAD_EVENTS[:3], good[1], good[2], *BAD_EVENTS[3:], good[3], good[4]]
    with pytest.raises(EventsRefused) as err:
        store.write(batch)
    assert [e for e, _ in err.value.refused] == BAD_EVENTS
    assert all("finite" in why for _, why in err.value.refused)
    assert [p.value for p in store.query(SERIES, T0, T0 + 100)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(EventsRefused):  # a batch of only bad events: nothing written, each refused
        store.write(BAD_EVENTS[:1])
    assert [e.value for e in store.latest()] == [4.0]


def test_a_store_refuses_a_bad_event_alone_and_stores_the_rest(store: Store) -> None:
    _refuses_each_bad_event_alone(store)


def test_influx2_refuses_a_bad_event_alone_and_stores_the_rest(victoria_metrics: VictoriaMetrics) -> None:
    url = parse_store_url(f"influxdb2://127.0.0.1:{victoria_metrics.port}/vigil?org=home",
                          env={"VIGIL_INFLUXDB_TOKEN": "t0ken"})
    good = [ev(float(i), T0 + 10 + i, device="bad-neighbours") for i in range(3)]
    with Influx2Store(url) as s, pytest.raises(EventsRefused) as err:
        s.write([good[0], *BAD_EVENTS, good[1], good[2]])
    assert [e for e, _ in err.value.refused] == BAD_EVENTS
    rows = victoria_metrics.export('{__name__="temperature_value",device="bad-neighbours"}')
    assert [v for r in rows for v in r["values"]] == [0.0, 1.0, 2.0]


# -- write_async: the bridge's write (InfluxDB 1.x on the event loop over a kept-alive connection) ---------------


def test_write_async_stores_hostile_names_and_refuses_bad_events_alone(store: Store) -> None:
    good = [ev(float(i), T0 + i, device=name, sensor=name) for i, name in enumerate(HOSTILE_NAMES)]

    async def main() -> None:
        await store.write_async(good)
        await store.write_async(good)  # idempotent
        with pytest.raises(EventsRefused) as err:
            await store.write_async([ev(7.0, T0 + 50), *BAD_EVENTS, ev(8.0, T0 + 51)])
        assert [e for e, _ in err.value.refused] == BAD_EVENTS

    asyncio.run(main())
    for i, name in enumerate(HOSTILE_NAMES):
        assert store.query(SeriesKey("temperature", name, name), T0, T0 + 100) == [Point(T0 + i, float(i))]
    assert [p.value for p in store.query(SERIES, T0, T0 + 100)] == [7.0, 8.0]


def test_influx1_write_async_missing_database_is_a_clear_refusal(influxd: Influxd) -> None:
    with open_store(influxd.url("no_such_db")) as s, pytest.raises(StoreRejected, match="database"):
        asyncio.run(s.write_async([ev(1.0, T0)]))


def test_influx1_write_async_down_is_unavailable_then_recovers_on_a_new_connection(private_influxd: Influxd) -> None:
    db = private_influxd.create_database("vigil")

    async def main(s: Store) -> None:
        for i in range(100):  # one kept-alive connection
            await s.write_async([ev(float(i), T0 + i)])
        private_influxd.stop()
        with pytest.raises(StoreUnavailable, match="cannot reach InfluxDB"):
            await s.write_async([ev(100.0, T0 + 100)])
        private_influxd.start()
        await s.write_async([ev(100.0, T0 + 100)])
        private_influxd.restart()  # the kept connection is dead: noticed on use and made again, no error
        await s.write_async([ev(101.0, T0 + 101)])

    with open_store(private_influxd.url(db)) as s:
        asyncio.run(main(s))
        assert [p.value for p in s.query(SERIES, T0, T0 + 200)] == [float(i) for i in range(102)]
