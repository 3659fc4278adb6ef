"""What a monthly temperature log costs: 20 units x 30 days at one reading every 10 s (5,184,000
readings; every 4th unit calibrated for the second half of the month, so its raw values are read too),
loaded into SQLite and into a private influxd (1.x), then ``make_report`` (sealing 600 unit-days)
+ ``write_pdf`` + ``write_csv`` of the month, timed in a fresh process each: wall time and peak RSS.
Then ``verify_file`` of the PDF (600 seals recomputed from the store).

    .venv/bin/python bench/report.py [--units 20] [--days 30] [--step 10] [--keep DIR]

Target (issue 17): under 30 s and under 300 MB on both stores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from vigil.core.event import Event
from vigil.core.stores import open_store

ZONE = "Europe/Berlin"
MONTH = "2026-11"


def series(u: int) -> str:
    return f"freezer-{u + 1}/t0/temperature"


def load(url: str, units: int, days: int, step: float, start: float) -> float:
    """Write the readings through the store's own write (batches of 20,000); seconds taken."""
    store = open_store(url, retention=10 * 365 * 86400.0)
    t0 = time.perf_counter()
    n = int(days * 86400 / step)
    rng = np.random.default_rng(17)
    for u in range(units):
        values = -18.0 + np.cumsum(rng.normal(0, 0.02, n)).clip(-3, 3) + rng.normal(0, 0.05, n)
        values = np.round(values, 2)
        if u == 3:  # a door left open: an excursion of 40 minutes on day 12
            i0 = int(11.5 * 86400 / step)
            values[i0: i0 + int(2400 / step)] = -8.0
        calibrated = u % 4 == 0
        device = f"freezer-{u + 1}"
        for b in range(0, n, 20_000):
            batch = []
            for i in range(b, min(n, b + 20_000)):
                v = float(values[i])
                raw = round(v + 0.4, 2) if calibrated and i >= n // 2 else None
                batch.append(Event(device=device, sensor="t0", metric="temperature", value=v, ts=start + i * step,
                                   unit="°C", raw=raw))
            store.write(batch)
        print(f"  loaded {series(u)} ({n:,} readings) {time.perf_counter() - t0:.0f} s", flush=True)
    store.close()
    return time.perf_counter() - t0


def ledger_with_an_excursion(state: Path, start: float) -> None:
    import sqlite3

    from alerting import ledger

    conn = sqlite3.connect(state, isolation_level=None)
    ledger.create(conn)
    conn.execute("BEGIN IMMEDIATE")
    key = "freezer-warm/freezer-4/t0/temperature"
    since = start + 11.5 * 86400
    ledger.append(conn, "fired", key, {"rule": "freezer-warm", "series": "freezer-4/t0/temperature", "since": since,
                                       "at": since + 300, "value": -8.0, "peak": -8.0, "severity": "critical",
                                       "message": "Freezer 4 at -8.0 °C", "unit": "°C", "latched": True}, since + 300)
    ledger.append(conn, "told", key, {"receiver": "kitchen-phone", "kind": "firing", "at": since + 301}, since + 301)
    ledger.append(conn, "cleared", key, {"since": since, "at": since + 2400, "peak": -8.0}, since + 2400)
    ledger.append(conn, "acked", key, {"by": "alice", "comment": "door closed", "via": "link", "episode": since,
                                       "at": since + 2500}, since + 2500)
    ledger.append(conn, "note", key, {"id": "n1", "by": "alice", "text": "stock checked, all below -12",
                                      "at": since + 2600}, since + 2600)
    conn.execute("COMMIT")
    conn.close()


def child(url: str, state: str, units: int, out: str, mode: str) -> None:
    """One measured run in this fresh process; prints JSON."""
    from alerting.report import ReportRequest, make_report, parse_period, verify_file, write_csv, write_pdf

    zone = zoneinfo.ZoneInfo(ZONE)
    store = open_store(url, retention=10 * 365 * 86400.0)
    t0 = time.perf_counter()
    if mode == "make":
        start, end = parse_period("month", MONTH, zone)
        request = ReportRequest([series(u) for u in range(units)], start, end, zone=zone, title="Kitchen, November")
        report = make_report(store, state, request)
        t1 = time.perf_counter()
        write_pdf(report, out + ".pdf")
        t2 = time.perf_counter()
        write_csv(report, out + ".csv")
        t3 = time.perf_counter()
        result = {"make": t1 - t0, "pdf": t2 - t1, "csv": t3 - t2, "seals": len(report.manifest.seals),
                  "readings": sum(u.count for u in report.units), "pdf_bytes": Path(out + ".pdf").stat().st_size}
    else:
        verdict = verify_file(out + ".pdf", store, state)
        result = {"ok": verdict.ok, "checked": verdict.checked, "problems": verdict.problems[:3]}
    result["wall"] = time.perf_counter() - t0
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(url: str, state: Path, units: int, out: Path, mode: str) -> dict[str, object]:
    argv = [sys.executable, __file__, "--child", mode, "--url", url, "--state", str(state), "--units", str(units),
            "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step", type=float, default=10.0)
    parser.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a temporary directory)")
    parser.add_argument("--only", choices=["sqlite", "influxdb"], help="one store only")
    parser.add_argument("--child", choices=["make", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.state, args.units, args.out, args.child)
        return
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vigil-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2026, 11, 1, tzinfo=zoneinfo.ZoneInfo(ZONE)).timestamp()
    n = int(args.units * args.days * 86400 / args.step)
    print(f"{args.units} units x {args.days} days at {args.step:g} s: {n:,} readings")
    influxd = None
    try:
        targets = []
        if args.only in (None, "sqlite"):
            targets.append(("sqlite", f"sqlite:///{work}/vigil.db"))
        if args.only in (None, "influxdb"):
            from tests.support.services import Influxd

            influxd = Influxd(work / "influxd")
            influxd.start()
            targets.append(("influxdb 1.x", influxd.url(influxd.create_database("bench"))))
        for name, url in targets:
            state = work / f"alerts-{name.split()[0]}.db"
            state.unlink(missing_ok=True)
            ledger_with_an_excursion(state, start)
            marker = work / f"loaded-{name.split()[0]}"
            if args.keep and marker.exists():  # --keep: the same data measured again
                print(f"{name}: loaded before ({marker})")
            else:
                print(f"{name}: loading")
                took = load(url, args.units, args.days, args.step, start)
                print(f"{name}: loaded in {took:.0f} s ({n / took:,.0f} readings/s)")
                marker.touch()
            made = measure(url, state, args.units, work / f"report-{name.split()[0]}", "make")
            print(f"{name}: make_report + write_pdf + write_csv of the month: {made['wall']:.1f} s wall "
                  f"(make {made['make']:.1f} s, pdf {made['pdf']:.1f} s, csv {made['csv']:.2f} s), "
                  f"peak RSS {made['rss_mb']:.0f} MB; {made['readings']:,} readings, {made['seals']} seals, "
                  f"PDF {int(str(made['pdf_bytes'])) / 1e6:.1f} MB")
            checked = measure(url, state, args.units, work / f"report-{name.split()[0]}", "verify")
            print(f"{name}: verify_file of the PDF: {checked['wall']:.1f} s wall, peak RSS {checked['rss_mb']:.0f} MB, "
                  f"ok={checked['ok']} ({checked['checked']})")
    finally:
        if influxd is not None:
            influxd.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
