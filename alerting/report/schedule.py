"""Scheduled reports: at ``at`` (site time) after each day, week or month, the report of the period just
finished is made and sent through apprise to the report's receivers, the PDF and CSV as attachments.

Runs inside the rule engine as one task (:meth:`ReportScheduler.run`; :meth:`ReportScheduler.step` for tests
on a ManualClock). Periods are local days, ISO weeks (Monday to Monday) and calendar months in the report's
zone (``time_zone:``, else the site's), so a day across a DST change is 23 or 25 hours long.

Exactly once per period: each run is a row of ``report_runs`` in the engine's state (name, period
start, state, files, the receivers already sent). A row is written before the report is made and each
receiver is recorded once its send succeeded, so a restart neither repeats nor skips a period; a receiver
whose send was under way when the process stopped or died is sent again (its outcome was never learned).

The state is the engine's SQLite file or the PostgreSQL database several engines share (vigil.core.sqldb); there
the scheduler runs with partition 0 (alerting/failover.py), and during a takeover two processes may step at once.
So a run is made and sent only by the scheduler that claimed it: an UPDATE of its row that sets ``owner`` and
``claimed_until`` (now + :data:`CLAIM`) where it is 'sending' and not claimed by another (or that claim ran out),
committed before the report is made and again before each receiver's send (with the engine's lease fence, when
given, in the same transaction); every later write of the run names its owner. The other scheduler finds the
row claimed and leaves it. A claim is let go when the run waits for a retry, and when the scheduler is stopped
(cancelled: SIGTERM, partition 0 handed over; or the fence found partition 0 lost) while it makes or sends the
run, so the next scheduler sends it when it next looks, to the receivers not yet recorded; the receiver whose
send was under way then is sent again (its outcome was never learned), and the log says it may get the report
twice. Only the claim of a process that died is waited for: it is taken once it runs out, and the receiver in
flight sent again, as after a restart. An SQLite file is one engine's: a scheduler that opens it takes over the
claims left in it at once. A period missed while the engine was down is sent on start, but only the last one:
older ones are logged (make them with ``vigil report``). A failing receiver is retried with the one backoff
(vigil/core/backoff.py, from 1 minute up to an hour) until the next period is due; then that run is given up as
``failed``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from alerting import ledger
from alerting.report.config import ReportSchedule
from alerting.state import immediate_transaction
from vigil.core import sqldb
from vigil.core.backoff import backoff_delay
from vigil.core.clock import Clock
from vigil.core.durations import format_duration
from vigil.core.settings import StoreSettings
from vigil.core.sitetime import format_time, site_zone
from vigil.core.stores import Store, open_store

if TYPE_CHECKING:
    from alerting.notify.config import NotifyConfig

__all__ = ["Job", "NothingToReport", "Period", "ReportScheduler", "last_due", "period_at", "render_files", "send_files"]

log = logging.getLogger(__name__)

#: the longest the scheduler sleeps before it looks again (a changed wall clock or rules file is seen by then)
MAX_SLEEP = 300.0
RETRY_FIRST, RETRY_CAP = 60.0, 3600.0
#: seconds a run's claim holds without being renewed (making the files, then each receiver's send renews it)
CLAIM = 900.0

# "end" quoted: a reserved word in PostgreSQL (SQLite's column of the same name)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_runs (
    name TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    period TEXT NOT NULL,
    state TEXT NOT NULL,          -- sending, sent, failed, skipped
    files TEXT NOT NULL DEFAULT '[]',
    done TEXT NOT NULL DEFAULT '[]',   -- receivers sent
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    error TEXT,
    updated REAL NOT NULL,
    owner TEXT,                   -- the scheduler making and sending it (module docstring)
    claimed_until REAL,
    PRIMARY KEY (name, start)
)
"""
#: columns newer than the first state files: added to an older file's table on open
_ADDED_COLUMNS = {"owner": "TEXT", "claimed_until": "REAL"}
#: a run this scheduler may claim: not claimed, its own, or a claim that ran out (parameters: owner, now)
_FREE = "(owner IS NULL OR owner = ? OR claimed_until <= ?)"
_RUN = "WHERE name = ? AND start = ?"


@dataclass(frozen=True)
class Period:
    """One day, week or month in a zone: [start, end) in epoch seconds, its label, and when it is sent."""

    start: float
    end: float
    label: str  # 2026-12-02, 2026-W49, 2026-12
    due: float


def _bounds(every: str, day: dt.date) -> tuple[dt.date, dt.date]:
    if every == "day":
        return day, day + dt.timedelta(days=1)
    if every == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def _label(every: str, start: dt.date) -> str:
    if every == "day":
        return start.isoformat()
    if every == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.strftime("%Y-%m")


def period_at(schedule: ReportSchedule, zone: dt.tzinfo, day: dt.date) -> Period:
    """The period of ``schedule`` that holds the local date ``day``."""
    start, end = _bounds(schedule.every, day)
    # zoneinfo reads a local time in a DST gap with the offset before it: a midnight that does not exist is the
    # moment the clock jumped, and an `at` of 02:30 in a 02:00-03:00 gap is 03:30 (summer time)
    return Period(dt.datetime.combine(start, dt.time(0), zone).timestamp(),
                  dt.datetime.combine(end, dt.time(0), zone).timestamp(), _label(schedule.every, start),
                  dt.datetime.combine(end, schedule.at, zone).timestamp())


def last_due(schedule: ReportSchedule, zone: dt.tzinfo, now: float) -> tuple[Period, float]:
    """The latest period whose send time has come at ``now``, and the send time of the one after it."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    current = period_at(schedule, zone, today)
    start = dt.datetime.fromtimestamp(current.start, zone).date()
    previous = period_at(schedule, zone, start - dt.timedelta(days=1))
    if previous.due <= now:
        return previous, current.due
    before = dt.datetime.fromtimestamp(previous.start, zone).date()
    return period_at(schedule, zone, before - dt.timedelta(days=1)), previous.due


@dataclass(frozen=True)
class Job:
    """One report to make: the series, the period, and where each format goes."""

    name: str
    units: list[str]
    period: Period
    interval: float
    zone: dt.tzinfo
    title: str
    paths: dict[str, Path]
    limits: dict[str, tuple[Optional[float], Optional[float]]] = field(default_factory=dict)
    journal: Optional[Path] = None  # the bridge's calibration journal, when there is one


class NothingToReport(Exception):
    """No reading of any of the series in the period."""


def render_files(store: Store, state_path: str, job: Job) -> None:
    """Make the report (alerting.report) and write each file whole (a crash leaves no half file)."""
    from alerting.report import EmptyPeriod, ReportRequest, make_report, write_csv, write_pdf
    from vigil.core.calibration import CalibrationJournal

    try:
        report = make_report(store, state_path, ReportRequest(
            units=job.units, start=job.period.start, end=job.period.end, interval=job.interval, zone=job.zone,
            title=job.title, limits=job.limits), journal=CalibrationJournal(job.journal) if job.journal else None)
    except EmptyPeriod as exc:
        raise NothingToReport(str(exc)) from None
    writers: dict[str, Callable[[Any, Path], Any]] = {"pdf": write_pdf, "csv": write_csv}
    for fmt, path in job.paths.items():
        part = path.with_name(path.name + ".part")
        writers[fmt](report, part)
        os.replace(part, path)


async def send_files(urls: list[str], title: str, body: str, files: Sequence[Path],
                     timeout: float = 120.0) -> Optional[str]:
    """Send one message with ``files`` attached to every URL; None when sent, else what went wrong (no secret)."""
    import apprise

    from alerting.notify.apprise_sender import scrub
    from alerting.notify.config import mask_apprise_url

    ap = apprise.Apprise()
    for url in urls:
        if not ap.add(url):
            return f"apprise does not understand the URL {mask_apprise_url(url)}"
    attach = apprise.AppriseAttachment()
    for f in files:
        if not attach.add(str(f)):
            return f"apprise cannot attach {f}"
    try:
        result = await ap.async_notify(body=body, title=title, attach=attach, timeout=timeout)
    except Exception as exc:  # a plugin bug must not stop the scheduler
        return scrub(f"apprise failed: {exc!r}", urls)
    if result:
        return None
    problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    return scrub(("; ".join(dict.fromkeys(problems)) or f"apprise reported {result.status.name}")[:500], urls)


Render = Callable[[Store, str, Job], None]
Send = Callable[[list[str], str, str, Sequence[Path]], Awaitable[Optional[str]]]


@dataclass
class _Run:
    name: str
    start: float
    state: str
    files: list[str]
    done: list[str]
    attempts: int
    next_at: float
    owner: Optional[str] = None
    sending: Optional[str] = None  # the receiver whose send is under way


class ReportScheduler:
    """Makes and sends the ``reports:`` of the rules in force (``config()``, so a reload takes effect)."""

    def __init__(self, config: Callable[[], Optional[NotifyConfig]], store: Union[Store, StoreSettings, None],
                 state_path: Union[str, Path], clock: Clock, *, zone: Optional[dt.tzinfo] = None,
                 data_dir: Union[str, Path, None] = None, rules_path: Optional[str] = None,
                 render: Render = render_files, send: Send = send_files,
                 fence: Optional[Callable[[Any], None]] = None) -> None:
        """``state_path``: the engine's SQLite file or a ``postgresql://`` URL (then ``data_dir`` must be given: the
        files are written there); ``fence``: called inside the transaction of each claim, to raise when this
        engine no longer holds partition 0 (alerting/failover.py)."""
        if data_dir is None and sqldb.is_postgres(str(state_path)):
            raise ValueError("the scheduled reports on a PostgreSQL state need a data directory for their files")
        self._config = config
        self._store = store
        self._opened: Optional[Store] = None
        self.state_path = str(state_path)
        self.clock = clock
        self.zone = zone
        self.data_dir = Path(data_dir if data_dir is not None else Path(state_path).parent)
        self.folder = self.data_dir / "reports"
        self.rules_path = rules_path  # the chart's limits come from its threshold rules
        self._render = render
        self._send = send
        self._fence = fence
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.db: sqldb.Connection = sqldb.connect(self.state_path, application_name="vigil-reports", timeout=30)
        try:
            self._create()
        except BaseException:
            self.db.close()
            raise

    def _create(self) -> None:
        if sqldb.dialect(self.db) == "postgresql":
            with immediate_transaction(self.db):
                ledger.lock(self.db)  # engines starting together: one creates the table, the others wait
                self.db.execute(_SCHEMA.replace(" REAL", " DOUBLE PRECISION"))
            return
        self.db.execute(_SCHEMA)
        with immediate_transaction(self.db):
            columns = {str(r[1]) for r in self.db.execute("PRAGMA table_info(report_runs)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in columns:
                    self.db.execute(f"ALTER TABLE report_runs ADD COLUMN {name} {kind}")
            # the file is this engine's alone: a claim in it is a previous run's of this engine (a restart)
            self.db.execute("UPDATE report_runs SET owner = NULL, claimed_until = NULL WHERE owner IS NOT NULL")

    def close(self) -> None:
        self.db.close()
        if self._opened is not None:
            self._opened.close()

    async def run(self) -> None:
        """Until cancelled: send what is due, then sleep until the next send time (at most 5 minutes)."""
        while True:
            wake = await self.step(self.clock.now())
            await self.clock.sleep(min(MAX_SLEEP, max(1.0, wake - self.clock.now())))

    async def step(self, now: float) -> float:
        """Start every run that is due at ``now`` and send what is pending; returns when to look again."""
        config = self._config()
        schedules = {s.name: s for s in (config.reports if config is not None else [])}
        wake = now + MAX_SLEEP
        for schedule in schedules.values():
            period, following = last_due(schedule, self._zone(schedule), now)
            wake = min(wake, following)
            if self._row(schedule.name, period.start) is None:
                self._begin(schedule, period, now)
        for run in self._pending():
            found = schedules.get(run.name)
            if found is None:
                self._finish(run, "failed", now, "the report is no longer in the rules")
                continue
            s = found
            period, following = last_due(s, self._zone(s), now)
            if period.start > run.start:
                if self._finish(run, "failed", now, "given up: the next period is due"):
                    log.error("report %s of %s not sent to %s: given up, the next period is due", run.name,
                              self._period(s, run.start).label,
                              ", ".join(r for r in s.receivers if r not in run.done))
                continue
            if run.next_at > now:
                wake = min(wake, run.next_at)
                continue
            if not self._claim(run, now, first=True):
                log.debug("report %s of %s: made and sent by another scheduler (%s)", run.name,
                          self._period(s, run.start).label, run.owner)
                continue
            try:
                retry = await self._work(s, run, config, now)
            except BaseException as exc:
                # stopped cleanly (cancelled: SIGTERM, a handover) or partition 0 lost (the fence; the engine stops):
                # the next scheduler need not wait for the claim to run out (a process that died runs nothing more)
                if isinstance(exc, asyncio.CancelledError) or getattr(exc, "final", False):
                    self._release(run, self._period(s, run.start).label)
                raise
            if retry is not None:
                wake = min(wake, retry)
        return wake

    # -- one run ---------------------------------------------------------------------------------

    def _zone(self, s: ReportSchedule) -> dt.tzinfo:
        return site_zone(s.time_zone) if s.time_zone else (self.zone or site_zone())

    def _period(self, s: ReportSchedule, start: float) -> Period:
        zone = self._zone(s)
        return period_at(s, zone, dt.datetime.fromtimestamp(start, zone).date())

    def _begin(self, s: ReportSchedule, period: Period, now: float) -> None:
        last = self.db.execute("SELECT MAX(start) FROM report_runs WHERE name = ?", (s.name,)).fetchone()[0]
        missed: list[str] = []
        if last is not None and last < period.start:
            p = self._period(s, self._period(s, last).end)
            while p.start < period.start and len(missed) < 1000:
                missed.append(p.label)
                p = self._period(s, p.end)
        begun = self.db.execute(
            'INSERT INTO report_runs (name, start, "end", period, state, updated) VALUES (?, ?, ?, ?, \'sending\', ?) '
            "ON CONFLICT (name, start) DO NOTHING", (s.name, period.start, period.end, period.label, now)).rowcount
        if begun == 1 and missed:  # said by the scheduler that began the run (another may have at the same time)
            log.warning("report %s: %d period(s) were due while the engine was down and are not sent (%s); "
                        "only the last one, %s, is: make the others with vigil report", s.name, len(missed),
                        missed[0] if len(missed) == 1 else f"{missed[0]} to {missed[-1]}", period.label)

    async def _work(self, s: ReportSchedule, run: _Run, config: Optional[NotifyConfig], now: float
                    ) -> Optional[float]:
        """Make the files (unless there) and send them to every receiver not yet sent; the retry time if any failed."""
        period = self._period(s, run.start)
        files = [Path(f) for f in run.files]
        errors: list[str] = []
        if not files or not all(f.is_file() for f in files):
            try:
                files = await asyncio.to_thread(self._make, s, period)
            except NothingToReport as exc:
                self._finish(run, "skipped", now, str(exc)[:500])
                log.warning("report %s of %s: nothing to report (%s); nothing sent", s.name, period.label, exc)
                return None
            except Exception as exc:  # the store away, a bad series: tried again later
                log.exception("report %s of %s could not be made", s.name, period.label)
                return self._retry(run, now, f"could not be made: {exc}"[:500])
            if not files:
                self._finish(run, "skipped", now, "no stored series matches")
                log.warning("report %s of %s: no stored series matches %s; nothing sent", s.name, period.label,
                            ", ".join(s.series))
                return None
            run.files = [str(f) for f in files]
            self.db.execute(f"UPDATE report_runs SET files = ?, updated = ? {_RUN} AND owner = ?",
                            (json.dumps(run.files), now, run.name, run.start, self.owner))
        title, body = self._words(s, period, files)
        for receiver in s.receivers:
            if receiver in run.done:
                continue
            if not self._claim(run, self.clock.now()):  # the claim ran out and another scheduler took the run
                log.warning("report %s of %s: taken over by another scheduler (%s) before it was sent to %s",
                            s.name, period.label, run.owner, receiver)
                return None
            urls = config.receivers.get(receiver, []) if config is not None else []
            error: Optional[str] = None if urls else f"no receiver {receiver!r}"
            try:
                resolved = [u.resolve() for u in urls]
            except Exception as exc:  # MissingSecret: said without the secret
                resolved, error = [], str(exc)
            if error is None:
                run.sending = receiver
                error = await self._send(resolved, title, body, files)
                run.sending = None
            if error is None:
                run.done.append(receiver)
                self.db.execute(f"UPDATE report_runs SET done = ?, updated = ? {_RUN} AND owner = ?",
                                (json.dumps(run.done), self.clock.now(), run.name, run.start, self.owner))
                log.info("report %s of %s sent to %s", s.name, period.label, receiver)
            else:
                log.warning("report %s of %s not sent to %s: %s", s.name, period.label, receiver, error)
                errors.append(f"{receiver}: {error}")
        if errors:
            return self._retry(run, now, "; ".join(errors)[:1000])
        self._finish(run, "sent", self.clock.now(), None)
        return None

    def _make(self, s: ReportSchedule, period: Period) -> list[Path]:
        store = self._open()
        units = sorted({e.series.id for e in store.latest()
                        if any(fnmatch.fnmatchcase(e.series.id, g) for g in s.series)})
        if not units:
            return []
        self.folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {fmt: self.folder / f"{s.name}-{period.label}.{fmt}" for fmt in s.formats}
        from alerting.report.limits import limits_from_rules
        from vigil.core.calibration import JOURNAL_NAME

        title = s.title or f"Temperature report {s.name} {period.label}"
        journal = self.data_dir / JOURNAL_NAME
        self._render(store, self.state_path, Job(
            s.name, units, period, s.interval, self._zone(s), title, paths,
            limits_from_rules(self.rules_path, units) if self.rules_path else {},
            journal if journal.exists() else None))
        return list(paths.values())

    def _open(self) -> Store:
        if isinstance(self._store, Store):
            return self._store
        if self._opened is None:
            if self._store is None:
                raise RuntimeError("the rule engine was given no store")
            self._opened = open_store(self._store.store_url(), retention=self._store.retention)
        return self._opened

    def _words(self, s: ReportSchedule, period: Period, files: list[Path]) -> tuple[str, str]:
        zone = self._zone(s)
        title = s.title or f"Temperature report {s.name} {period.label}"
        body = (f"The temperature report {s.name} for {period.label}: from {format_time(period.start, zone)} "
                f"to {format_time(period.end, zone)}, one row every {format_duration(s.interval)}.\n"
                f"Attached: {', '.join(f.name for f in files)} (kept in {self.folder}).")
        return title, body

    # -- the run records -------------------------------------------------------------------------

    def _row(self, name: str, start: float) -> Optional[tuple[Any, ...]]:
        row: Optional[tuple[Any, ...]] = self.db.execute(
            f"SELECT state FROM report_runs {_RUN}", (name, start)).fetchone()
        return row

    def _pending(self) -> list[_Run]:
        rows = self.db.execute("SELECT name, start, state, files, done, attempts, next_at, owner FROM report_runs "
                               "WHERE state = 'sending' ORDER BY start").fetchall()
        return [_Run(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def _claim(self, run: _Run, now: float, *, first: bool = False) -> bool:
        """Claim (or renew the claim of) ``run`` until ``now`` + CLAIM, in a transaction of its own with the fence;
        False when another scheduler holds it (or it is no longer due). ``first``: read the run again once
        claimed (another scheduler may have sent some receivers since it was read)."""
        with immediate_transaction(self.db):
            if self._fence is not None:
                self._fence(self.db)
            claimed = self.db.execute(
                f"UPDATE report_runs SET owner = ?, claimed_until = ? {_RUN} AND state = 'sending' AND next_at <= ? "
                f"AND {_FREE}", (self.owner, now + CLAIM, run.name, run.start, now, self.owner, now)).rowcount == 1
            row = self.db.execute(f"SELECT files, done, attempts, next_at, owner FROM report_runs {_RUN}",
                                  (run.name, run.start)).fetchone()
        if row is not None:
            run.owner = row[4]
            if claimed and first:
                run.files, run.done, run.attempts, run.next_at = json.loads(row[0]), json.loads(row[1]), row[2], row[3]
        return claimed

    def _retry(self, run: _Run, now: float, error: str) -> float:
        """Try again later (the claim let go: whichever scheduler steps then may)."""
        run.attempts += 1
        run.next_at = now + backoff_delay(run.attempts, RETRY_CAP, first=RETRY_FIRST)
        self.db.execute("UPDATE report_runs SET attempts = ?, next_at = ?, error = ?, updated = ?, owner = NULL, "
                        f"claimed_until = NULL {_RUN} AND owner = ?",
                        (run.attempts, run.next_at, error, now, run.name, run.start, self.owner))
        return run.next_at

    def _release(self, run: _Run, label: str) -> None:
        """Let this scheduler's claim of ``run`` go, the receivers recorded as sent kept (not a claim another
        scheduler took once this one ran out); said in the log, with the receiver whose send was cut short."""
        if run.sending is not None:
            log.warning("report %s of %s: stopped while it was being sent to %s; whether it arrived is not known, so "
                        "it is sent to %s again (it may get it twice)", run.name, label, run.sending, run.sending)
        try:
            cur = self.db.execute(f"UPDATE report_runs SET owner = NULL, claimed_until = NULL {_RUN} AND owner = ?",
                                  (run.name, run.start, self.owner))
        except sqldb.errors() as exc:  # the database away: the claim runs out as a dead process's
            log.warning("report %s of %s: stopped, its claim not let go (%s): it is taken once it runs out",
                        run.name, label, sqldb.scrub(self.state_path, str(exc)))
            return
        if cur.rowcount == 1:
            log.info("report %s of %s: stopped before it was sent to all its receivers; left to the next scheduler",
                     run.name, label)

    def _finish(self, run: _Run, state: str, now: float, error: Optional[str]) -> bool:
        """Mark the run ``state``, unless another scheduler holds it (then False)."""
        cur = self.db.execute(
            "UPDATE report_runs SET state = ?, error = COALESCE(?, error), updated = ?, owner = NULL, "
            f"claimed_until = NULL {_RUN} AND state = 'sending' AND {_FREE}",
            (state, error, now, run.name, run.start, self.owner, now))
        return bool(cur.rowcount == 1)

    def runs(self, name: Optional[str] = None) -> list[dict[str, Any]]:
        """The run records (newest first), for tests and status."""
        cur = self.db.execute('SELECT name, start, "end", period, state, files, done, attempts, error '
                              "FROM report_runs" + (" WHERE name = ?" if name is not None else "") +
                              " ORDER BY start DESC", (name,) if name is not None else ())
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
