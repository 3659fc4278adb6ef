"""The report scheduler on a ManualClock: periods in the site zone (DST, month ends), exactly once per
period across restarts, missed periods, retries with backoff, give-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo

import pytest

from alerting.engine import PartitionLost
from alerting.notify.config import NotifyConfig
from alerting.report.config import ReportSchedule
from alerting.report.schedule import CLAIM, Job, NothingToReport, ReportScheduler, last_due, period_at
from alerting.state import StateDB
from vigil.core import sqldb
from vigil.core.clock import ManualClock
from vigil.core.event import Event
from vigil.core.stores import Store
from vigil.core.stores.memory import MemoryStore

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: dt.tzinfo = BERLIN) -> float:
    """Epoch seconds of a local wall time ``YYYY-MM-DD HH:MM``."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()


def sched(every: str = "day", time: str = "07:00", **kw: Any) -> ReportSchedule:
    return ReportSchedule.model_validate({"name": "kitchen", "series": ["freezer-*/t0/temperature"],
                                          "every": every, "at": time, "receivers": ["a"], **kw})


# -- periods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("every", "day", "start", "end", "label"), [
    ("day", dt.date(2026, 12, 2), "2026-12-02 00:00", "2026-12-03 00:00", "2026-12-02"),
    ("day", dt.date(2026, 12, 31), "2026-12-31 00:00", "2027-01-01 00:00", "2026-12-31"),
    ("week", dt.date(2026, 12, 2), "2026-11-30 00:00", "2026-12-07 00:00", "2026-W49"),
    ("week", dt.date(2027, 1, 2), "2026-12-28 00:00", "2027-01-04 00:00", "2026-W53"),
    ("month", dt.date(2027, 1, 31), "2027-01-01 00:00", "2027-02-01 00:00", "2027-01"),
    ("month", dt.date(2028, 2, 29), "2028-02-01 00:00", "2028-03-01 00:00", "2028-02"),
    ("month", dt.date(2026, 12, 15), "2026-12-01 00:00", "2027-01-01 00:00", "2026-12"),
])
def test_period_bounds_and_labels(every: str, day: dt.date, start: str, end: str, label: str) -> None:
    p = period_at(sched(every), BERLIN, day)
    assert (p.start, p.end, p.label) == (at(start), at(end), label)
    assert p.due == at(end[:10] + " 07:00")


def test_days_across_dst_are_23_and_25_hours() -> None:
    spring = period_at(sched(), BERLIN, dt.date(2026, 3, 29))
    autumn = period_at(sched(), BERLIN, dt.date(2026, 10, 25))
    assert spring.end - spring.start == 23 * 3600
    assert autumn.end - autumn.start == 25 * 3600
    week = period_at(sched("week"), BERLIN, dt.date(2026, 10, 25))
    assert week.end - week.start == 7 * 86400 + 3600
    march = period_at(sched("month"), BERLIN, dt.date(2026, 3, 1))
    assert march.end - march.start == 31 * 86400 - 3600


def test_a_midnight_that_does_not_exist_starts_the_day_when_the_clock_jumps() -> None:
    santiago = ZoneInfo("America/Santiago")  # 2026-09-06 00:00 -04 jumps to 01:00 -03
    day = period_at(sched(), santiago, dt.date(2026, 9, 6))
    assert day.start == dt.datetime(2026, 9, 6, 4, 0, tzinfo=dt.timezone.utc).timestamp()
    assert day.end - day.start == 23 * 3600
    before = period_at(sched(), santiago, dt.date(2026, 9, 5))
    assert before.end == day.start and before.end - before.start == 24 * 3600


def test_send_time_in_a_dst_gap_is_when_the_clock_jumped() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: it is read as winter time, the report of the 28th goes at
    # 03:30 CEST (01:30 UTC)
    p = period_at(sched(time="02:30"), BERLIN, dt.date(2026, 3, 28))
    assert p.due == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone.utc).timestamp()
    # an ambiguous 02:30 (the 25th of October) is the first of the two
    p = period_at(sched(time="02:30"), BERLIN, dt.date(2026, 10, 24))
    assert p.due == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc).timestamp()


def test_last_due_turns_at_the_send_time() -> None:
    s = sched()
    before, following = last_due(s, BERLIN, at("2026-12-03 06:59"))
    assert before.label == "2026-12-01" and following == at("2026-12-03 07:00")
    now, following = last_due(s, BERLIN, at("2026-12-03 07:00"))
    assert now.label == "2026-12-02" and following == at("2026-12-04 07:00")
    monthly, following = last_due(sched("month"), BERLIN, at("2027-03-01 06:00"))
    assert monthly.label == "2027-01" and following == at("2027-03-01 07:00")


def test_the_zone_is_the_schedules_own_when_it_names_one() -> None:
    s = sched(time_zone="America/New_York")
    p, _ = last_due(s, ZoneInfo("America/New_York"), at("2026-12-03 08:00", ZoneInfo("America/New_York")))
    assert p.start == at("2026-12-02 00:00", ZoneInfo("America/New_York"))


# -- the scheduler -----------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies here (not an error the scheduler could handle)."""


class Harness:
    """A scheduler on a ManualClock, a memory store, a renderer writing small files, a recording sender.

    The state is an SQLite file in ``tmp``, or the PostgreSQL database ``Harness.url`` when a test sets it
    (tests/integration/alerting/report/test_reports_postgres.py)."""

    url: Optional[str] = None

    def __init__(self, tmp: Path, reports: list[dict[str, Any]], receivers: Sequence[str] = ("a",),
                 start: float = 0.0) -> None:
        self.tmp = tmp
        self.state: Path | str = self.url or tmp / "alerts.db"
        self.made: list[ReportScheduler] = []
        StateDB(str(self.state)).close()
        self.store = MemoryStore()
        self.store.write([Event("freezer-1", "t0", "temperature", -18.0, at("2026-11-30 12:00")),
                          Event("freezer-2", "t0", "temperature", -19.0, at("2026-11-30 12:00")),
                          Event("fridge-1", "t0", "temperature", 4.0, at("2026-11-30 12:00"))])
        self.config = NotifyConfig.model_validate({
            "receivers": {r: [f"json://127.0.0.1:9/{r}"] for r in receivers}, "reports": reports})
        self.clock = ManualClock(start or at("2026-12-02 12:00"))
        self.jobs: list[Job] = []
        self.sent: list[tuple[str, str, list[str]]] = []
        self.fail: dict[str, int] = {}  # receiver -> failures still to come
        self.crash_on: Optional[str] = None
        self.empty = False
        self.delay = 0.0  # seconds each send takes (another scheduler steps meanwhile)
        self.stall: set[str] = set()  # receivers whose send never ends (until the scheduler is stopped)
        self.stalled: list[str] = []  # the sends that began so
        self.gate: Optional[threading.Event] = None  # the next report made waits for it (in its thread)
        self.tasks: list[asyncio.Task[Any]] = []
        self.scheduler = self.new()

    def new(self, fence: Optional[Callable[[Any], None]] = None) -> ReportScheduler:
        made = ReportScheduler(lambda: self.config, self.store, self.state, self.clock, zone=BERLIN,
                               data_dir=self.tmp, render=self.render, send=self.send, fence=fence)
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.close()

    def render(self, store: Store, state_path: str, job: Job) -> None:
        assert store is self.store and state_path == str(self.state)
        self.jobs.append(job)
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.wait(30)
        if self.empty:
            raise NothingToReport("none of the series has a reading in the period")
        for path in job.paths.values():
            path.write_text(json.dumps({"units": job.units, "start": job.period.start}))

    async def send(self, urls: list[str], title: str, body: str, files: Sequence[Path]) -> Optional[str]:
        receiver = urls[0].rsplit("/", 1)[1]
        if self.delay:
            await asyncio.sleep(self.delay)
        if receiver in self.stall:
            self.stalled.append(receiver)
            await asyncio.Event().wait()
        if receiver == self.crash_on:
            self.crash_on = None
            raise Crash()
        if self.fail.get(receiver, 0) > 0:
            self.fail[receiver] -= 1
            return "HTTP 500"
        for f in files:
            assert f.is_file()
        self.sent.append((receiver, title, [f.name for f in files]))
        return None

    async def step(self, when: Optional[str] = None) -> float:
        if when is not None:
            self.clock.set(at(when))
        return await self.scheduler.step(self.clock.now())

    async def until(self, done: Callable[[], object]) -> None:
        """Let the tasks run until ``done()`` (a report is made in a thread)."""
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached in 5 s")

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """``work`` as a task of its own, cancelled by :meth:`stop_all` if the test leaves it running."""
        task = asyncio.create_task(work)
        self.tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[Any]) -> None:
        """A clean stop: ``task`` cancelled, as the engine's TaskGroup does on SIGTERM or a handover."""
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def stop_all(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def owner(self) -> Optional[str]:
        """The scheduler holding the one run's claim, read as another process would."""
        conn = sqldb.connect(str(self.state))
        try:
            owner: Optional[str] = conn.execute("SELECT owner FROM report_runs").fetchone()[0]
            return owner
        finally:
            conn.close()


DAILY = {"name": "kitchen", "series": ["freezer-*/t0/temperature"], "every": "day", "at": "07:00",
         "receivers": ["a"]}


async def test_sends_the_day_just_finished_once_at_the_send_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, [DAILY])
    await h.step("2026-12-02 12:00")  # a new schedule sends the last period due (the 1st) at once
    h.sent.clear()
    h.jobs.clear()
    wake = await h.step("2026-12-03 06:59")
    assert h.sent == [] and wake == at("2026-12-03 07:00")
    await h.step("2026-12-03 07:00")
    assert h.sent == [("a", "Temperature report kitchen 2026-12-02", ["kitchen-2026-12-02.pdf",
                                                                     "kitchen-2026-12-02.csv"])]
    [job] = h.jobs
    assert job.units == ["freezer-1/t0/temperature", "freezer-2/t0/temperature"]
    assert (job.period.start, job.period.end) == (at("2026-12-02 00:00"), at("2026-12-03 00:00"))
    assert job.paths["pdf"] == tmp_path / "reports" / "kitchen-2026-12-02.pdf"
    await h.step("2026-12-03 07:05")
    await h.step("2026-12-03 23:00")
    assert len(h.sent) == 1
    # a restart (a new scheduler on the same state file) neither repeats nor skips
    h.scheduler.close()
    h.scheduler = h.new()
    await h.step("2026-12-03 23:30")
    assert len(h.sent) == 1
    await h.step("2026-12-04 07:00")
    assert [s[1] for s in h.sent] == ["Temperature report kitchen 2026-12-02", "Temperature report kitchen 2026-12-03"]
    runs = h.scheduler.runs("kitchen")
    assert [(r["period"], r["state"], json.loads(r["done"])) for r in runs] == [
        ("2026-12-03", "sent", ["a"]), ("2026-12-02", "sent", ["a"]), ("2026-12-01", "sent", ["a"])]


async def test_weekly_and_monthly_across_dst_and_month_ends(tmp_path: Path) -> None:
    weekly = {**DAILY, "name": "w", "every": "week"}
    monthly = {**DAILY, "name": "m", "every": "month", "at": "00:30", "formats": ["csv"]}
    h = Harness(tmp_path, [weekly, monthly], start=at("2026-10-24 12:00"))
    await h.step()
    h.sent.clear()
    h.jobs.clear()
    await h.step("2026-10-26 06:59")
    assert h.sent == []
    await h.step("2026-10-26 07:00")  # the week of the 25 h Sunday
    [job] = h.jobs
    assert job.period.label == "2026-W43" and job.period.end - job.period.start == 7 * 86400 + 3600
    await h.step("2026-11-01 00:30")
    assert [j.period.label for j in h.jobs] == ["2026-W43", "2026-10"]
    assert h.sent[-1][2] == ["m-2026-10.csv"]
    await h.step("2027-01-01 00:30")  # the December report; November's was due on the 1st of December
    assert sorted(j.period.label for j in h.jobs[-2:]) == ["2026-12", "2026-W52"]


async def test_a_period_missed_while_down_is_sent_on_start_but_only_the_last(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, [DAILY])
    await h.step("2026-12-02 12:00")
    h.scheduler.close()
    h.clock.set(at("2026-12-06 09:00"))  # down from the 2nd until the 6th
    h.scheduler = h.new()
    with caplog.at_level(logging.WARNING):
        await h.step()
    assert [s[1][-10:] for s in h.sent] == ["2026-12-01", "2026-12-05"]
    assert ("report kitchen: 3 period(s) were due while the engine was down and are not sent (2026-12-02 to "
            "2026-12-04); only the last one, 2026-12-05, is") in caplog.text


async def test_a_failing_receiver_is_retried_with_backoff_and_the_others_are_not_repeated(tmp_path: Path) -> None:
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b"]}], receivers=("a", "b"))
    h.fail["b"] = 2
    wake = await h.step("2026-12-02 12:00")
    assert [s[0] for s in h.sent] == ["a"]
    assert 30 <= wake - h.clock.now() <= 60  # the first retry: backoff_delay(1, first=60) is 30 to 60 s
    await h.step("2026-12-02 12:00")  # not before its time
    assert h.fail["b"] == 1
    h.clock.set(wake)
    wake2 = await h.step()
    assert h.fail["b"] == 0 and [s[0] for s in h.sent] == ["a"]
    assert 60 <= wake2 - h.clock.now() <= 120
    h.clock.set(wake2)
    await h.step()
    assert [s[0] for s in h.sent] == ["a", "b"]
    [run] = h.scheduler.runs()
    assert run["state"] == "sent" and run["attempts"] == 2 and "b: HTTP 500" in run["error"]
    assert len(h.jobs) == 1  # the files were made once


async def test_restart_mid_send_resends_only_the_receiver_in_flight(tmp_path: Path) -> None:
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b", "c"]}], receivers=("a", "b", "c"))
    h.crash_on = "b"
    with pytest.raises(Crash):
        await h.step("2026-12-02 12:00")
    assert [s[0] for s in h.sent] == ["a"]
    h.scheduler.close()
    h.scheduler = h.new()
    await h.step("2026-12-02 12:01")
    assert [s[0] for s in h.sent] == ["a", "b", "c"]
    assert len(h.jobs) == 1  # the files made before the crash are sent, not made again
    await h.step("2026-12-02 13:00")
    assert len(h.sent) == 3


@pytest.mark.parametrize("stopped_in", ["make", "send"])
async def test_a_scheduler_stopped_mid_run_lets_its_claim_go(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, stopped_in: str) -> None:
    """A clean stop (the engine's task cancelled: SIGTERM, partition 0 handed over) while the report is made or
    sent lets the claim go: the next scheduler sends it when it next looks, not once the claim ran out (15 min),
    to the receivers not recorded as sent; the one whose send was cut short again, and the log says so."""
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b", "c"]}], receivers=("a", "b", "c"))
    other = h.new()  # the next holder of partition 0 (made first: an SQLite state is taken over when opened)
    gate = threading.Event()
    try:
        if stopped_in == "make":
            h.gate = gate
        else:
            h.stall = {"b"}
        h.clock.set(at("2026-12-02 12:00"))
        task = h.start(h.scheduler.run())
        await h.until(lambda: h.stalled if stopped_in == "send" else h.jobs)
        assert h.owner() == h.scheduler.owner
        h.stall.clear()
        with caplog.at_level(logging.INFO):
            await h.stop(task)
        assert h.owner() is None
        assert [s[0] for s in h.sent] == ([] if stopped_in == "make" else ["a"])
        said = "report kitchen of 2026-12-01: stopped while it was being sent to b; whether it arrived is not known"
        assert (said in caplog.text) == (stopped_in == "send")
        h.clock.advance(60)
        await other.step(h.clock.now())
        assert [s[0] for s in h.sent] == ["a", "b", "c"]
        assert len(h.jobs) == (2 if stopped_in == "make" else 1)  # files made before the stop are sent
        assert [(r["state"], json.loads(r["done"])) for r in other.runs()] == [("sent", ["a", "b", "c"])]
    finally:
        gate.set()
        await h.stop_all()
        h.close()


async def test_a_stopped_scheduler_leaves_a_claim_another_took_since(tmp_path: Path) -> None:
    """The claim let go on a stop is the stopping scheduler's own: not one another took once it ran out."""
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b", "c"]}], receivers=("a", "b", "c"))
    other = h.new()
    try:
        h.stall = {"b"}
        h.clock.set(at("2026-12-02 12:00"))
        first = h.start(h.scheduler.run())
        await h.until(lambda: h.stalled == ["b"])
        h.clock.advance(CLAIM)  # the first one's send hangs past its claim: the other takes the run
        second = h.start(other.step(h.clock.now()))
        await h.until(lambda: h.stalled == ["b", "b"])
        assert h.owner() == other.owner
        await h.stop(first)
        assert h.owner() == other.owner
        await h.stop(second)
        assert h.owner() is None and [s[0] for s in h.sent] == ["a"]
    finally:
        await h.stop_all()
        h.close()


async def test_a_scheduler_whose_partition_was_handed_over_lets_its_claim_go(tmp_path: Path) -> None:
    """Partition 0 handed over between two sends: the fence stops the scheduler before the next one (its engine
    stops: PartitionLost), and the claim is let go, so the new holder sends to the rest when it next looks."""
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b"]}], receivers=("a", "b"))
    other = h.new()

    def fence(db: Any) -> None:
        if h.sent:  # the lease went to another member once a was sent
            raise PartitionLost("partition 0 is another member's now")

    h.scheduler = h.new(fence)
    try:
        with pytest.raises(PartitionLost):
            await h.step("2026-12-02 12:00")
        assert h.owner() is None and [s[0] for s in h.sent] == ["a"]
        await other.step(h.clock.now())
        assert [s[0] for s in h.sent] == ["a", "b"] and len(h.jobs) == 1
    finally:
        h.close()


async def test_two_schedulers_on_one_state_make_and_send_a_due_report_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b"]}], receivers=("a", "b"))
    other = h.new()
    h.delay = 0.05
    try:
        for when in ("2026-12-02 12:00", "2026-12-02 12:01", "2026-12-03 07:00"):
            h.clock.set(at(when))
            await asyncio.gather(h.scheduler.step(h.clock.now()), other.step(h.clock.now()))
        assert sorted((s[0], s[1][-10:]) for s in h.sent) == [
            ("a", "2026-12-01"), ("a", "2026-12-02"), ("b", "2026-12-01"), ("b", "2026-12-02")]
        assert sorted(j.period.label for j in h.jobs) == ["2026-12-01", "2026-12-02"]  # each made once
        assert [(r["period"], r["state"], sorted(json.loads(r["done"]))) for r in other.runs()] == [
            ("2026-12-02", "sent", ["a", "b"]), ("2026-12-01", "sent", ["a", "b"])]
    finally:
        h.close()


async def test_an_older_runs_table_is_given_the_claim_columns(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "alerts.db")
    old.execute("CREATE TABLE report_runs (name TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL, "
                "period TEXT NOT NULL, state TEXT NOT NULL, files TEXT NOT NULL DEFAULT '[]', "
                "done TEXT NOT NULL DEFAULT '[]', attempts INTEGER NOT NULL DEFAULT 0, "
                "next_at REAL NOT NULL DEFAULT 0, error TEXT, updated REAL NOT NULL, PRIMARY KEY (name, start))")
    old.execute("INSERT INTO report_runs (name, start, end, period, state, updated) VALUES (?, ?, ?, ?, 'sending', 0)",
                ("kitchen", at("2026-12-01 00:00"), at("2026-12-02 00:00"), "2026-12-01"))
    old.commit()
    old.close()
    h = Harness(tmp_path, [DAILY])
    await h.step("2026-12-02 12:00")
    assert [s[1][-10:] for s in h.sent] == ["2026-12-01"]
    assert [(r["period"], r["state"]) for r in h.scheduler.runs()] == [("2026-12-01", "sent")]
    h.close()


async def test_files_lost_before_sending_are_made_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, [DAILY])
    h.crash_on = "a"
    with pytest.raises(Crash):
        await h.step("2026-12-02 12:00")
    for f in (tmp_path / "reports").iterdir():
        f.unlink()
    h.scheduler = h.new()
    await h.step()
    assert len(h.jobs) == 2 and [s[0] for s in h.sent] == ["a"]


async def test_a_receiver_failing_until_the_next_period_is_given_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, [DAILY])
    h.fail["a"] = 10_000
    await h.step("2026-12-02 12:00")
    t = at("2026-12-02 12:00")
    while t < at("2026-12-03 07:00"):
        t = min(at("2026-12-03 07:00"), max(await h.step(), t + 1))
        h.clock.set(t)
    attempts = 10_000 - h.fail["a"]
    assert 20 <= attempts <= 45  # backoff from 1 minute up to an hour (jittered: 30 to 60 min) over 19 hours
    with caplog.at_level(logging.ERROR):
        await h.step()
    states = {r["period"]: r["state"] for r in h.scheduler.runs()}
    assert states == {"2026-12-01": "failed", "2026-12-02": "sending"}
    assert "report kitchen of 2026-12-01 not sent to a: given up" in caplog.text


async def test_no_matching_series_sends_nothing_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, [{**DAILY, "series": ["cellar-*/t0/humidity"]}])
    with caplog.at_level(logging.WARNING):
        await h.step("2026-12-02 12:00")
    assert h.sent == [] and h.jobs == []
    assert [r["state"] for r in h.scheduler.runs()] == ["skipped"]
    assert "no stored series matches cellar-*/t0/humidity" in caplog.text


async def test_a_period_without_readings_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, [DAILY])
    h.empty = True
    with caplog.at_level(logging.WARNING):
        await h.step("2026-12-02 12:00")
        await h.step("2026-12-02 13:00")
    assert h.sent == [] and len(h.jobs) == 1
    assert [(r["state"], r["error"]) for r in h.scheduler.runs()] == [
        ("skipped", "none of the series has a reading in the period")]
    assert "report kitchen of 2026-12-01: nothing to report" in caplog.text


async def test_a_store_that_fails_is_tried_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, [DAILY])
    h.store.available = False
    wake = await h.step("2026-12-02 12:00")
    assert h.sent == [] and wake < h.clock.now() + 61
    h.store.available = True
    h.clock.set(wake)
    await h.step()
    assert [s[0] for s in h.sent] == ["a"]


async def test_rules_reloaded_take_effect_and_a_removed_report_stops(tmp_path: Path) -> None:
    h = Harness(tmp_path, [], receivers=("a",))
    await h.step("2026-12-02 12:00")
    assert h.sent == []
    h.config = NotifyConfig.model_validate({"receivers": {"a": ["json://127.0.0.1:9/a"]}, "reports": [DAILY]})
    h.fail["a"] = 1
    await h.step("2026-12-02 12:01")
    h.config = NotifyConfig.model_validate({"receivers": {"a": ["json://127.0.0.1:9/a"]}})
    await h.step("2026-12-02 13:00")
    assert h.sent == []
    assert [(r["state"], r["error"]) for r in h.scheduler.runs()] == [
        ("failed", "the report is no longer in the rules")]


async def test_a_missing_secret_is_a_failure_that_names_the_variable_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_NOTIFY_HOOK", raising=False)
    h = Harness(tmp_path, [DAILY])
    h.config = NotifyConfig.model_validate({"receivers": {"a": ["json://127.0.0.1:9/${VIGIL_NOTIFY_HOOK}"]},
                                            "reports": [DAILY]})
    await h.step("2026-12-02 12:00")
    [run] = h.scheduler.runs()
    assert h.sent == [] and run["state"] == "sending"
    assert run["error"] == "a: environment variable VIGIL_NOTIFY_HOOK is not set (named in a receiver URL)"


async def test_run_sleeps_until_the_send_time_on_the_clock(tmp_path: Path) -> None:
    h = Harness(tmp_path, [DAILY])
    task = asyncio.create_task(h.scheduler.run())

    async def sent(n: int) -> list[str]:
        for _ in range(500):  # the files are made in a thread
            if len(h.sent) >= n:
                break
            await asyncio.sleep(0.01)
        return [s[1][-10:] for s in h.sent]

    try:
        assert await sent(1) == ["2026-12-01"]  # at once
        while h.clock.now() < at("2026-12-03 06:55"):
            h.clock.advance(300)
            await asyncio.sleep(0.01)
        assert await sent(1) == ["2026-12-01"]
        h.clock.set(at("2026-12-03 07:00"))
        assert await sent(2) == ["2026-12-01", "2026-12-02"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
