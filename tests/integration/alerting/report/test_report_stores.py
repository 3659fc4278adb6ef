"""Reports on the real stores (a SQLite file, a private influxd): the same readings give the same seals;
a reading changed or deleted in the store afterwards is found by verify_file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting import ledger
from alerting.report import ReportRequest, make_report, verify_file, write_csv, write_pdf
from tests.support.reports import SERIES, ZONE, day_bounds, excursion_rows, fill, write_ledger
from tests.support.services import Influxd
from vigil.core.event import Event
from vigil.core.stores import Store, open_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/vigil.db", retention=10 * 365 * 86400.0)
    else:
        influxd: Influxd = request.getfixturevalue("influxd")
        s = open_store(influxd.url(request.getfixturevalue("influx_db")))
    yield request.param, s
    s.close()


def report_files(store: Store, tmp_path: Path) -> tuple[Path, Path, Path, list[Event]]:
    events = fill(store, minutes=2 * 1440, raw_from=1800)
    start, _ = day_bounds()
    state = tmp_path / "alerts.db"
    write_ledger(state, excursion_rows(start + 3600))
    report = make_report(store, state, ReportRequest([SERIES], start, start + 2 * 86400, zone=ZONE),
                         now=start + 3 * 86400)
    pdf, csv = tmp_path / "log.pdf", tmp_path / "log.csv"
    write_pdf(report, pdf)
    write_csv(report, csv)
    assert report.units[0].count == 2880 and report.units[0].corrected == 1080
    assert len(report.manifest.seals) == 2 and report.units[0].excursions
    return state, pdf, csv, events


def test_seals_are_the_same_on_both_stores(tmp_path: Path, influxd: Influxd, influx_db: str) -> None:
    digests = []
    for name, url in [("sqlite", f"sqlite:///{tmp_path}/vigil.db"), ("influx", influxd.url(influx_db))]:
        (tmp_path / name).mkdir()
        with open_store(url, retention=10 * 365 * 86400.0) as s:
            state, _, _, _ = report_files(s, tmp_path / name)
        conn = sqlite3.connect(state)
        digests.append([(e.body["count"], e.body["sha256"]) for e in ledger.entries(conn, kinds=["seal"])])
        conn.close()
    assert digests[0] == digests[1] and len(digests[0]) == 2


def test_verify_finds_a_changed_and_a_deleted_reading(store: tuple[str, Store], tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    kind, s = store
    state, pdf, csv, events = report_files(s, tmp_path)
    for path in (pdf, csv):
        verdict = verify_file(path, s, state)
        assert verdict.ok, verdict.problems
    changed = events[2000]  # the second day (2026-11-04)
    s.write([Event(device=changed.device, sensor=changed.sensor, metric=changed.metric, value=changed.value - 3,
                   ts=changed.ts, raw=changed.raw)])
    assert verify_file(pdf, s, state).problems == [
        f"{SERIES} 2026-11-04: 1,440 readings as when sealed, but a time or value differs from then"]
    gone = events[10]
    if kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "vigil.db")
        conn.execute("DELETE FROM readings WHERE device = ? AND ts = ?", (gone.device, gone.ts_us))
        conn.commit()
        conn.close()
    else:
        influxd: Influxd = request.getfixturevalue("influxd")
        db = request.getfixturevalue("influx_db")
        answer = influxd.query(f"DELETE FROM \"temperature\" WHERE \"device\" = '{gone.device}' AND "
                               f"time = {gone.ts_us * 1000}", db=db)
        assert "error" not in str(answer), answer
    problems = verify_file(csv, s, state).problems
    assert problems == [f"{SERIES} 2026-11-03: 1,439 readings now, 1,440 when sealed",
                        f"{SERIES} 2026-11-04: 1,440 readings as when sealed, but a time or value differs from then"]


def test_a_store_that_is_down_is_said_not_hidden(tmp_path: Path, private_influxd: Influxd) -> None:
    s = open_store(private_influxd.url(private_influxd.create_database("down")))
    state, pdf, _, _ = report_files(s, tmp_path)
    private_influxd.stop()
    verdict = verify_file(pdf, s, state)
    assert not verdict.ok and len(verdict.problems) == 2
    assert all("the store did not answer" in p and "not checked" in p for p in verdict.problems), verdict.problems
    s.close()


def test_the_engine_writing_meanwhile_does_not_break_the_chain(tmp_path: Path) -> None:
    """The report appends its seals in its own write transaction; rows the engine appends before and after
    keep one chain (SQLite serialises the two writers)."""
    with open_store(f"sqlite:///{tmp_path}/vigil.db", retention=10 * 365 * 86400.0) as s:
        start, _ = day_bounds()
        state = tmp_path / "alerts.db"
        fill(s, minutes=1440)
        write_ledger(state, excursion_rows(start + 3600))
        engine = sqlite3.connect(state, isolation_level=None, check_same_thread=False)
        engine.execute("PRAGMA journal_mode=WAL")
        engine.execute("BEGIN IMMEDIATE")  # the engine holds the write lock while the report starts
        ledger.append(engine, "told", "freezer-warm/" + SERIES, {"receiver": "x", "kind": "repeat", "at": 1.0}, 1.0)
        release = threading.Timer(1.0, lambda: engine.execute("COMMIT"))
        release.start()
        report = make_report(s, state, ReportRequest([SERIES], start, start + 86400, zone=ZONE),
                             now=start + 2 * 86400)
        release.join()
        ledger.append(engine, "note", "freezer-warm/" + SERIES, {"id": "z", "by": "y", "text": "t", "at": 2.0}, 2.0)
        assert ledger.verify(engine) == []
        assert report.manifest.head_seq == 9 and report.manifest.seals == [8]
        csv = tmp_path / "log.csv"
        write_csv(report, csv)
        assert verify_file(csv, s, state).ok
        engine.close()
