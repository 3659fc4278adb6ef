"""make_report on the in-memory store and a ledger written by hand: marks, days, excursions, the request."""

from __future__ import annotations

import math
import sqlite3
import zoneinfo
from pathlib import Path

import numpy as np
import pytest

from alerting import ledger
from alerting.report import (
    EmptyPeriod,
    ReportError,
    ReportRequest,
    make_report,
    mark_times,
    parse_period,
    previous_period,
    site_days,
)
from alerting.report.period import parse_time
from tests.support.reports import KEY, SERIES, ZONE, day_bounds, excursion_rows, fill, value_at, write_ledger
from vigil.core.calibration import CalibrationJournal, Change, Correction
from vigil.core.stores import MemoryStore


def request(start: float, end: float, units: list[str] | None = None, interval: float = 4 * 3600) -> ReportRequest:
    return ReportRequest(units or [SERIES], start, end, interval=interval, zone=ZONE)


def test_marks_days_and_summary(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, skip=(7 * 60, 9 * 60 + 30))  # nothing from 07:00 to 09:29
    report = make_report(store, tmp_path / "alerts.db", request(start, end, interval=3600), now=end + 60)
    (u,) = report.units
    assert [m.at for m in u.marks] == [start + 3600 * h for h in range(24)]
    # the reading at each mark is the one of that minute (or the one just before, within the hour)
    assert u.marks[3].value == value_at(180) and u.marks[3].ts == start + 3 * 3600
    # 08:00 and 09:00: the last reading (06:59) is over an hour old: no reading
    assert (u.marks[8].value, u.marks[9].value) == (None, None)
    assert u.marks[10].value == value_at(600)
    values = np.array([value_at(i) for i in range(1440) if not 420 <= i < 570])
    assert u.count == values.size == 1440 - 150
    assert (u.low, u.high) == (values.min(), values.max())
    assert u.mean == pytest.approx(values.mean())
    (d,) = u.days
    assert (d.day, d.count, d.low, d.high) == ("2026-11-03", u.count, u.low, u.high)
    assert u.corrected == 0 and u.calibration == []


def test_marks_before_the_period_and_beyond_now(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, start=start - 600, minutes=10)  # 23:50 .. 23:59 the day before
    fill(store, start=start + 4.5 * 3600, minutes=1)  # and 04:30
    report = make_report(store, tmp_path / "a.db", request(start, end), now=start + 5 * 3600, seal=False)
    (u,) = report.units
    # 00:00 takes 23:59 the evening before; 04:00 has none; marks stop at "now" (05:00)
    assert [m.value for m in u.marks] == [value_at(9), None]


def test_a_dst_day_has_25_hours_and_marks_on_the_wall_clock() -> None:
    start, end = parse_period("day", "2026-10-25", ZONE)
    assert end - start == 25 * 3600
    assert site_days(start, end, ZONE) == [("2026-10-25", start, end)]
    hours = [f"{np.datetime64(int(t), 's')}" for t in mark_times(start, end, 4 * 3600, ZONE)]
    local = [__import__("datetime").datetime.fromtimestamp(t, ZONE).strftime("%H:%M")
             for t in mark_times(start, end, 4 * 3600, ZONE)]
    assert local == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"] and len(hours) == 6
    spring_start, spring_end = parse_period("day", "2026-03-29", ZONE)
    assert spring_end - spring_start == 23 * 3600


def test_excursions_with_people_notes_and_episodes(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store)
    state = tmp_path / "alerts.db"
    first, second = start + 3600, start + 5 * 3600
    rows = excursion_rows(first)
    # fired again while cleared: a new excursion; a stale ack (episode = the first) must not land on it
    rows += [("fired", KEY, {"rule": "freezer-warm", "series": SERIES, "since": second, "at": second + 300,
                             "value": -10.0, "peak": -10.0, "severity": "critical", "message": "again", "unit": "°C",
                             "latched": True}),
             ("acked", KEY, {"by": "bob", "comment": "", "via": "dashboard", "episode": first, "at": second + 400}),
             ("told", KEY, {"receiver": "manager", "kind": "escalation", "at": second + 900}),
             # the dispatcher wrote late about the first: it still belongs to the first
             ("told", KEY, {"receiver": "late-pager", "kind": "repeat", "at": first + 500}),
             ("note", KEY, {"id": "dup", "by": "carol", "text": "called service", "at": second + 950}),
             ("note", KEY, {"id": "dup", "by": "carol", "text": "called service", "at": second + 951}),
             # another series' alert and a series whose name only ends like ours are not ours
             ("fired", "warm/freezer-2/t0/temperature", {"since": first, "at": first}),
             ("fired", "warm/x/freezer-1/t0/temperature", {"since": first, "at": first}),
             # an excursion of the day before, over before the period: left out
             *excursion_rows(start - 86400)]
    write_ledger(state, rows)
    (u,) = make_report(store, state, request(start, end), now=end + 60).units
    assert [x.since for x in u.excursions] == [first, second]
    one, two = u.excursions
    assert (one.ended, one.peak, one.severity) == (first + 2400, -8.0, "critical")
    assert [t["receiver"] for t in one.told] == ["kitchen-phone", "late-pager"]
    assert [(a["by"], a["via"]) for a in one.acks] == [("alice", "link"), ("bob", "dashboard")]
    assert [n["text"] for n in one.notes] == ["door closed, stock checked"]
    assert two.ended is None and two.acks == [] and [t["kind"] for t in two.told] == ["escalation"]
    assert [n["by"] for n in two.notes] == ["carol"]  # the redelivered note once
    assert two.duration(second + 1000) == 1000


def test_calibration_said_per_unit(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, raw_from=720)
    journal = CalibrationJournal(tmp_path / "bridge-calibration.jsonl")
    journal.append(Change(SERIES, Correction(offset=-0.4), start + 720 * 60 - 1, "alice", "ice bath"))
    report = make_report(store, tmp_path / "a.db", request(start, end, interval=6 * 3600), journal=journal,
                         now=end + 1)
    (u,) = report.units
    assert u.corrected == 720 and u.days[0].corrected == 720
    assert [m.raw is not None for m in u.marks] == [False, False, True, True]
    assert u.marks[2].raw == round(u.marks[2].value + 0.4, 2)  # type: ignore[operator]
    assert any("alice" in line and "ice bath" in line for line in u.calibration), u.calibration
    assert any("720 of 1,440 readings corrected" in line for line in u.calibration), u.calibration


def test_an_empty_period_raises_and_seals_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, start=start + 86400)  # the next day only
    state = tmp_path / "alerts.db"
    write_ledger(state, [])
    with pytest.raises(EmptyPeriod, match="no readings of freezer-1/t0/temperature"):
        make_report(store, state, request(start, end), now=end + 60)
    conn = sqlite3.connect(state)
    assert ledger.head(conn) == (0, ledger.GENESIS)
    conn.close()


@pytest.mark.parametrize(("change", "words"), [
    ({"units": []}, "no series"),
    ({"units": ["a/b"]}, "device/sensor/metric"),
    ({"units": ["a/b/c/d"]}, "device/sensor/metric"),
    ({"units": ["fr+eezer/t0/temperature"]}, "wildcard"),
    ({"units": ["a/\u202eb/c"]}, "U\\+202E"),
    ({"units": [SERIES, SERIES]}, "twice"),
    ({"units": [f"d{i}/t0/temperature" for i in range(201)]}, "at most 200"),
    ({"start": math.nan}, "after its start"),
    ({"end": math.inf}, "after its start"),
    ({"end": 0.0}, "after its start"),
    ({"end": 1e12}, "400 days"),
    ({"interval": 0.0}, "at least 1 minute"),
    ({"interval": math.nan}, "at least 1 minute"),
    ({"interval": 60.0, "end": 1.8e9 + 30 * 86400}, "20,000"),
    ({"title": "x" * 201}, "over 200 characters"),
    ({"title": "Kitchen\nFreezers"}, "control character"),
    ({"title": "Küche \u202e"}, "U\\+202E"),
])
def test_requests_that_cannot_be_met(change: dict[str, object], words: str, tmp_path: Path) -> None:
    args: dict[str, object] = {"units": [SERIES], "start": 1.8e9, "end": 1.8e9 + 86400}
    args.update(change)
    with pytest.raises(ReportError, match=words):
        make_report(MemoryStore(), tmp_path / "a.db", ReportRequest(zone=ZONE, **args))  # type: ignore[arg-type]
    assert not (tmp_path / "a.db").exists()


def test_periods() -> None:
    utc = zoneinfo.ZoneInfo("UTC")
    assert parse_period("week", "2026-W45", utc) == parse_period("week", "2026-11-05", utc)
    s, e = parse_period("week", "2026-W45", utc)
    assert (e - s, __import__("datetime").datetime.fromtimestamp(s, utc).strftime("%a %d")) == (7 * 86400, "Mon 02")
    s, e = parse_period("month", "2026-02", utc)
    assert e - s == 28 * 86400
    assert parse_period("month", "2026-12", utc)[1] == parse_period("day", "2027-01-01", utc)[0]
    now = parse_time("2026-12-03T10:00", utc)
    assert previous_period("day", now, utc) == parse_period("day", "2026-12-02", utc)
    assert previous_period("week", now, utc) == parse_period("week", "2026-W48", utc)
    assert previous_period("month", now, utc) == parse_period("month", "2026-11", utc)
    assert parse_time("2026-11-03", ZONE, end=True) == day_bounds()[1]
    assert parse_time("2026-11-03T08:00+00:00", ZONE) == parse_time("2026-11-03T09:00", ZONE)
    for kind, text in [("day", "2026-02-30"), ("day", ""), ("week", "2026-W54"), ("month", "2026-13"),
                       ("month", "2026"), ("day", "9" * 400), ("week", "\x00")]:
        with pytest.raises(ReportError, match=f"--{kind}"):
            parse_period(kind, text, utc)
    with pytest.raises(ReportError, match="not a date"):
        parse_time("yesterday", utc)
    with pytest.raises(ReportError, match="kind of period"):
        previous_period("year", now, utc)
