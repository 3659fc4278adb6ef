"""``vigil report``: the temperature log of some series over a day, week, month or range (PDF, CSV), and
``vigil report verify FILE``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

from vigil.app.config import VigilConfig
from vigil.app.runtime import add_common_arguments, config_from_args
from vigil.core.durations import parse_duration
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vigil.core.sitetime import site_zone
from vigil.core.stores import Store, StoreError, open_store

__all__ = ["add_arguments", "run"]

DESCRIPTION = """\
The temperature log of one or more series (device/sensor/metric, or a glob such as 'freezer-*/t0/temperature')
over a day, an ISO week, a month or a range, in the site's time zone (dashboard.timezone): the reading at
or just before every mark (--every, default 4h; "no reading" when none within the interval), each day's
min/max/mean, every excursion with who was told, who acknowledged (when, how) and the corrective-action
notes, readings corrected by a calibration, and a chart. Written as PDF (--pdf) and/or CSV (--csv).

Each complete day of each series is sealed in the alert ledger (in the alert state, alerting.state: its
SQLite file, or the PostgreSQL database engines share):
the count and SHA-256 of its stored readings. The files carry a manifest (report id, the ledger head it
used, the seals). `vigil report verify FILE` checks later that nothing it stood on changed: the ledger's
chain, and every sealed day recomputed from the store; exit status 0 when all holds, 1 with the problems.
See docs/reports.md."""

EPILOG = """\
examples:
  vigil report -c vigil.yaml --series freezer-1/t0/temperature --day 2026-11-03 --pdf day.pdf
  vigil report -c vigil.yaml --series 'freezer-*/t0/temperature' --week 2026-W45 --pdf week.pdf --csv week.csv
  vigil report -c vigil.yaml --series fridge-1/t0/temperature --month 2026-11 --every 2h --csv nov.csv
  vigil report -c vigil.yaml --series fridge-1/t0/temperature --from 2026-11-01 --to 2026-11-15 --pdf a.pdf
  vigil report -c vigil.yaml verify nov.csv

--to DATE includes that day; --from/--to also take times (2026-11-03T08:00, local unless with an offset).
exit status: 0 written (or verified), 1 nothing to report or verification found problems,
2 a wrong argument (unknown series, bad date), 3 the configuration or the alert state cannot be used.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("words", nargs="*", metavar="verify FILE", help="check a report file instead of making one")
    parser.add_argument("--series", action="append", default=[], metavar="SERIES",
                        help="device/sensor/metric or a glob; repeat for more")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--day", metavar="YYYY-MM-DD")
    when.add_argument("--week", metavar="YYYY-Www", help="an ISO week (Monday to Monday), or a date in it")
    when.add_argument("--month", metavar="YYYY-MM")
    when.add_argument("--from", dest="start", metavar="DATE|TIME", help="with --to: a range")
    parser.add_argument("--to", dest="end", metavar="DATE|TIME", help="end of the range (a date: that day included)")
    parser.add_argument("--every", default="4h", metavar="DURATION", help="time between readings shown (default 4h)")
    parser.add_argument("--pdf", metavar="FILE", help="write the PDF here")
    parser.add_argument("--csv", metavar="FILE", help="write the CSV here")
    parser.add_argument("--title", default="", help="the report's title (default: Temperature log)")
    parser.add_argument("--state", metavar="FILE|URL",
                        help="the alert state with the ledger: its SQLite file, or its postgresql:// URL "
                             "(default: vigil.yaml's alerting.state)")
    parser.add_argument("--data-dir", metavar="DIR", help="Vigil's data directory (default: vigil.yaml's)")
    parser.add_argument("--no-seal", action="store_true",
                        help="write nothing to the ledger (the files then cannot be verified)")


def _fail(message: str, code: int) -> int:
    print(f"vigil report: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from alerting.report import ReportError, StateUnavailable

    extra = {"data_dir": (args.data_dir, "--data-dir")} if args.data_dir else {}
    config = config_from_args(args, extra)
    state: str = args.state or config.alerting.state  # a file, or a postgresql:// URL: never made a Path
    try:
        store = open_store(config.store.store_url(), retention=config.store.retention)
    except (StoreError, ValueError) as exc:
        return _fail(f"cannot open the store: {exc}", EXIT_CONFIG)
    try:
        if args.words:
            if len(args.words) != 2 or args.words[0] != "verify":
                return _fail("expected `vigil report verify FILE`, or options only (see --help)", EXIT_USAGE)
            return _verify(args.words[1], store, state)
        return _make(args, config, store, state)
    except ReportError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StateUnavailable as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except StoreError as exc:
        return _fail(f"the store failed: {exc}", EXIT_FAILED)
    finally:
        store.close()


def _verify(path: str, store: Store, state: str) -> int:
    from alerting.report import ReportError, verify_file

    try:
        verdict = verify_file(path, store, state)
    except ReportError as exc:
        return _fail(f"{path}: {exc}", EXIT_FAILED)
    if verdict.ok:
        print(f"{path}: ok ({verdict.checked})")
        return EXIT_OK
    print(f"{path}: {len(verdict.problems)} problem{'s' if len(verdict.problems) != 1 else ''} "
          f"({verdict.checked}):")
    for p in verdict.problems:
        print(f"  {p}")
    return EXIT_FAILED


def _units(store: Store, wanted: list[str]) -> list[str]:
    """The series asked for (globs expanded against the stored ones); ReportError names the unknown."""
    from alerting.report import ReportError

    known = sorted({e.series.id for e in store.latest()})
    out: list[str] = []
    for w in wanted:
        found = fnmatch.filter(known, w) if any(c in w for c in "*?[") else [w] if w in known else []
        if not found:
            hint = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "") if known else "none stored yet"
            raise ReportError(f"no series {w!r} in the store (device/sensor/metric; stored: {hint})")
        out += [f for f in found if f not in out]
    return out


def _make(args: argparse.Namespace, config: VigilConfig, store: Store, state: str) -> int:
    from alerting.report import (
        EmptyPeriod,
        ReportError,
        ReportRequest,
        make_report,
        parse_period,
        write_csv,
        write_pdf,
    )
    from alerting.report.limits import limits_from_rules
    from alerting.report.period import parse_time
    from vigil.core.calibration import JOURNAL_NAME, CalibrationJournal

    if not args.series:
        return _fail("name a series: --series device/sensor/metric (see --help)", EXIT_USAGE)
    if not (args.pdf or args.csv):
        return _fail("say where to write it: --pdf FILE and/or --csv FILE", EXIT_USAGE)
    zone = site_zone(config.dashboard.timezone)
    kind = next((k for k in ("day", "week", "month") if getattr(args, k)), None)
    if kind is not None:
        if args.end:
            return _fail("--to goes with --from, not with --day/--week/--month", EXIT_USAGE)
        start, end = parse_period(kind, getattr(args, kind), zone)
    elif args.start and args.end:
        start, end = parse_time(args.start, zone), parse_time(args.end, zone, end=True)
    else:
        return _fail("say which period: --day, --week, --month, or --from with --to", EXIT_USAGE)
    try:
        every = parse_duration(args.every)
    except ValueError as exc:
        return _fail(f"--every: {exc}", EXIT_USAGE)
    if start >= time.time():
        raise ReportError("the period has not begun yet")
    for out in (args.pdf, args.csv):
        if out and not Path(out).parent.is_dir():
            return _fail(f"cannot write {out}: no directory {Path(out).parent}", EXIT_USAGE)
    units = _units(store, args.series)
    request = ReportRequest(units, start, end, every, zone, args.title,
                            limits_from_rules(config.alerting.rules, units))
    request.check()
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, series: str) -> None:
        line = f"reading {done + 1}/{total} {series}" if series else f"read {total} series"
        print(("\r" + line + " " * 20) if tty else line, end="" if tty and series else "\n", file=sys.stderr,
              flush=True)

    journal_path = Path(config.data_dir) / JOURNAL_NAME
    try:
        report = make_report(store, state, request, seal=not args.no_seal, progress=progress,
                             journal=CalibrationJournal(journal_path) if journal_path.exists() else None)
    except EmptyPeriod as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:  # the state file's directory cannot be made (database errors: StateUnavailable)
        return _fail(f"cannot use the alert state file {state}: {exc}", EXIT_CONFIG)
    written = []
    try:
        if args.pdf:
            write_pdf(report, args.pdf)
            written.append(args.pdf)
        if args.csv:
            write_csv(report, args.csv)
            written.append(args.csv)
    except OSError as exc:
        return _fail(f"cannot write the report: {exc}", EXIT_FAILED)
    for w in report.warnings:
        print(f"vigil report: warning: {w}", file=sys.stderr)
    m = report.manifest
    sealed = f"{len(m.seals)} seals, ledger record {m.head_seq}" if m.seals or not args.no_seal else "not sealed"
    print(f"report {m.report_id}: {len(units)} series, {sum(u.count for u in report.units):,} readings, "
          f"{sum(len(u.excursions) for u in report.units)} excursions; {sealed}; wrote {', '.join(written)}")
    return EXIT_OK
