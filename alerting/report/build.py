"""``make_report``: each unit's readings read once from the store (two queries: values and raw values),
summed up with numpy, its excursions from the ledger, its complete days sealed in the ledger."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from alerting import ledger
from vigil.core.calibration import CalibrationJournal
from vigil.core.event import METRIC_UNITS
from vigil.core.sitetime import format_time
from vigil.core.stores import Store

from .excursions import excursions_of
from .ledgerdb import has_ledger, open_ledger_readonly, state_errors
from .model import DayStats, EmptyPeriod, Excursion, Manifest, Mark, Report, ReportRequest, UnitReport
from .seal import Readings, SealWanted, digest, load_readings, record

__all__ = ["make_report", "mark_times", "site_days", "zone_name"]

READERS = 3  # queries of one series in flight at once (a day each)
CHART_BUCKETS = 2150  # two points (low, high) each: about 4,300 points per chart


def zone_name(zone: dt.tzinfo) -> str:
    return str(getattr(zone, "key", None) or dt.datetime.now(zone).tzname() or "UTC")


def _local(ts: float, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, zone)


def _epoch(naive: dt.datetime, zone: dt.tzinfo) -> float:
    return naive.replace(tzinfo=zone).timestamp()


def site_days(start: float, end: float, zone: dt.tzinfo) -> list[tuple[str, float, float]]:
    """The site days touching ``[start, end)``: (YYYY-MM-DD, local midnight, next local midnight)."""
    day = _local(start, zone).date()
    out = []
    while True:
        d0 = _epoch(dt.datetime.combine(day, dt.time()), zone)
        if d0 >= end:
            break
        nxt = day + dt.timedelta(days=1)
        out.append((day.isoformat(), d0, _epoch(dt.datetime.combine(nxt, dt.time()), zone)))
        day = nxt
    return out


def mark_times(start: float, stop: float, interval: float, zone: dt.tzinfo) -> list[float]:
    """``start``, then every ``interval`` of wall-clock time in ``zone`` (00:00, 04:00, ... across DST), < stop."""
    base = _local(start, zone).replace(tzinfo=None)
    out: list[float] = []
    k = 0
    while True:
        t = _epoch(base + dt.timedelta(seconds=k * interval), zone)
        k += 1
        if t >= stop:
            return out
        if not out or t > out[-1]:
            out.append(t)


def _f(x: Any) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _marks(r: Readings, times: list[float], interval: float) -> list[Mark]:
    if not times:
        return []
    at_us = np.rint(np.asarray(times) * 1e6).astype(np.int64)
    idx = np.searchsorted(r.ts, at_us, side="right") - 1
    out = []
    window = round(interval * 1e6)
    for at, mark_us, i in zip(times, at_us, idx.tolist()):
        if i >= 0 and r.ts[i] > mark_us - window:
            out.append(Mark(at, float(r.ts[i]) / 1e6, float(r.value[i]), _f(r.raw[i])))
        else:
            out.append(Mark(at, None, None, None))
    return out


def _envelope(r: Readings, start: float, end: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any],
                                                              np.ndarray[Any, Any]]:
    edges = np.linspace(start, end, CHART_BUCKETS + 1)
    cut = np.searchsorted(r.ts, np.rint(edges * 1e6).astype(np.int64))
    low = np.full(CHART_BUCKETS, np.nan)
    high = np.full(CHART_BUCKETS, np.nan)
    full = np.nonzero(cut[1:] > cut[:-1])[0]
    if full.size:
        low[full] = _reduce(np.minimum, r, cut, full)
        high[full] = _reduce(np.maximum, r, cut, full)
    return edges[:-1], low, high


def _reduce(op: Any, r: Readings, cut: np.ndarray[Any, Any], full: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    # reduceat over the whole array in bucket order; only the non-empty buckets' results are kept
    seg = r.value[cut[0]: cut[-1]]
    return np.asarray(op.reduceat(seg, cut[full] - cut[0]))


def _day_stats(r: Readings, days: list[tuple[str, float, float]], start: float, end: float) -> list[DayStats]:
    out = []
    for day, d0, d1 in days:
        part = r.between(max(d0, start), min(d1, end))
        n = len(part)
        out.append(DayStats(day, d0, d1, n, float(part.value.min()) if n else None,
                            float(part.value.max()) if n else None, float(part.value.mean()) if n else None,
                            int(np.count_nonzero(~np.isnan(part.raw)))))
    return out


def _calibration(journal: Optional[CalibrationJournal], series: str, start: float, end: float,
                 zone: dt.tzinfo, corrected: int, count: int) -> list[str]:
    lines = []
    if journal is not None:
        before = journal.in_force(series, start)
        if before is not None and before.correction is not None:
            lines.append(f"in force from {format_time(before.at, zone)}: {before.correction.describe()} "
                         f"by {before.by}" + (f" ({before.note})" if before.note else ""))
        for c in journal.history(series):
            if start <= c.at < end:
                what = c.correction.describe() if c.correction else "calibration cleared"
                note = f" ({c.note})" if c.note else ""
                lines.append(f"changed {format_time(c.at, zone)}: {what} by {c.by}{note}")
    if corrected:
        lines.append(f"{corrected:,} of {count:,} readings corrected by a calibration; the value before it is "
                     "in the raw column")
    return lines


def make_report(store: Store, state_path: str | Path, request: ReportRequest, *, seal: bool = True,
                journal: Optional[CalibrationJournal] = None, now: Optional[float] = None,
                progress: Optional[Callable[[int, int, str], None]] = None) -> Report:
    """The report of ``request``: readings from ``store``, excursions from the ledger in ``state_path`` (the
    engine's SQLite file, or a ``postgresql://`` URL).

    With ``seal``, the complete site days of each unit are sealed in the ledger (unless already) and a
    ``report`` row is appended; the manifest names them. EmptyPeriod when no unit has a reading in
    the period (then nothing is sealed); ReportError for a request that cannot be met; StateUnavailable when the
    state cannot be read or written.
    """
    request.check()
    now = time.time() if now is None else now
    zone = request.zone
    with state_errors(state_path):
        conn = open_ledger_readonly(state_path)
        try:
            head_seq, head_hash = ledger.head(conn) if conn is not None and has_ledger(conn) else (0, ledger.GENESIS)
            excursions = excursions_of(conn, request.units, head_seq) if conn is not None else {}
        finally:
            if conn is not None:
                conn.close()
    days = site_days(request.start, request.end, zone)
    times = mark_times(request.start, min(request.end, now), request.interval, zone)
    units: list[UnitReport] = []
    wanted: list[SealWanted] = []
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="report-read") as pool:
        for i, series in enumerate(request.units):
            if progress is not None:
                progress(i, len(request.units), series)
            r = load_readings(store, series, request.start - request.interval, request.end, pool)
            inside = r.between(request.start, request.end)
            n = len(inside)
            corrected = int(np.count_nonzero(~np.isnan(inside.raw)))
            for day, d0, d1 in days:
                if d0 >= request.start and d1 <= request.end and d1 <= now:
                    part = r.between(d0, d1)
                    wanted.append(SealWanted(series, d0, d1, len(part), digest(part), day))
            found = [x for x in excursions.get(series, [])
                     if x.since < request.end and (x.ended is None or x.ended >= request.start)]
            ts, low, high = _envelope(inside, request.start, request.end)
            metric = series.rsplit("/", 1)[1]
            units.append(UnitReport(
                series=series, unit=METRIC_UNITS.get(metric) or next((x.unit for x in found if x.unit), ""),
                count=n, low=float(inside.value.min()) if n else None, high=float(inside.value.max()) if n else None,
                mean=float(inside.value.mean()) if n else None, corrected=corrected,
                marks=_marks(r, times, request.interval), days=_day_stats(r, days, request.start, request.end),
                excursions=found, calibration=_calibration(journal, series, request.start, request.end, zone,
                                                           corrected, n),
                chart_ts=ts, chart_low=low, chart_high=high, limits=request.limits.get(series, (None, None)),
                spacing=float(np.median(np.diff(inside.ts))) / 1e6 if n > 1 else 0.0))
            del r, inside
    if progress is not None:
        progress(len(request.units), len(request.units), "")
    if not any(u.count for u in units) and not any(u.excursions for u in units):
        names = ", ".join(request.units)
        raise EmptyPeriod(f"no readings of {names} between {format_time(request.start, zone)} and "
                          f"{format_time(request.end, zone)}: nothing to report")
    report_id = f"{dt.datetime.fromtimestamp(now, dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    manifest = Manifest(report_id, request.start, request.end, zone_name(zone), list(request.units),
                        head_seq, head_hash, [], now)
    report = Report(request, zone_name(zone), now, units, manifest)
    from .csvout import data_digest, render_data

    report.data_csv = render_data(report)
    data_sha = data_digest(report.data_csv)
    seals: list[int] = []
    if seal:
        body = {"id": report_id, "start": request.start, "end": request.end, "units": list(request.units),
                "head_seq": head_seq, "data_sha256": data_sha, "zone": zone_name(zone)}
        seals, warnings, entry = record(state_path, wanted, body, now)
        report.warnings.extend(warnings)
        head_seq, head_hash = entry.seq, entry.hash
    report.manifest = Manifest(report_id, request.start, request.end, zone_name(zone), list(request.units),
                               head_seq, head_hash, seals, now, data_sha)
    return report


def excursion_people(x: Excursion, zone: dt.tzinfo) -> tuple[str, str]:
    """Who was told, who acknowledged (and when, how): two short texts."""
    told = ", ".join(sorted({t["receiver"] for t in x.told})) or "nobody recorded"
    acks = "; ".join(f"{a['by']} {format_time(a['at'], zone)}" + (f" via {a['via']}" if a.get("via") else "")
                     for a in x.acks) or "not acknowledged"
    return told, acks
