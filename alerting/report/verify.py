"""``verify_file``: does what a report file stood on still hold?

It reads the file's manifest (a CSV's ``# manifest:`` line, a PDF's keywords), then checks the ledger's
chain up to the report's own row (nothing changed, deleted or inserted), that the row matches the
manifest (and, for a CSV, the data lines' hash), and recomputes every sealed digest from the store.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from alerting import ledger
from vigil.core.sqldb import is_postgres
from vigil.core.stores import Store, StoreError

from .csvout import data_digest, read_csv_manifest
from .ledgerdb import has_ledger, open_ledger_readonly, shown, state_errors
from .model import Manifest, ReportError, Verdict
from .pdfout import read_pdf_manifest
from .seal import digest, load_readings

__all__ = ["verify_file"]

MAX_FILE = 256 * 1024 * 1024


def _day(ts: float, zone_name: str) -> str:
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.timezone.utc
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d")


def _read(path: str | Path) -> tuple[Manifest, str, bool]:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE:
            raise ReportError(f"{p} is {size:,} bytes: not a report Vigil wrote")
        data = p.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read {p}: {exc.strerror or exc}") from None
    if data.startswith(b"%PDF-"):
        return read_pdf_manifest(data), "", True
    manifest, lines = read_csv_manifest(data)
    return manifest, lines, False


def verify_file(path: str | Path, store: Store, state_path: str | Path) -> Verdict:
    """Verdict(ok, problems in words, what was checked); ReportError when the file is not a Vigil report,
    StateUnavailable when the state (an SQLite file, or a ``postgresql://`` URL) cannot be read."""
    manifest, data_lines, is_pdf = _read(path)
    problems: list[str] = []
    with state_errors(state_path):
        conn = open_ledger_readonly(state_path)
        try:
            if conn is None or not has_ledger(conn):
                what = "database" if is_postgres(str(state_path)) else "file"
                return Verdict(False, [f"no ledger in {shown(state_path)}: the alert state {what} the report was "
                                       "made from is not there (give the right one with --state)"], "nothing")
            problems += ledger.verify(conn, upto=manifest.head_seq, upto_hash=manifest.head_hash)
            rows = {e.seq: e for e in ledger.entries(conn, kinds=["seal", "report"], upto=manifest.head_seq)}
        finally:
            if conn is not None:
                conn.close()
    own = rows.get(manifest.head_seq)
    if own is None or own.kind != "report" or own.key != manifest.report_id:
        problems.append(f"report {manifest.report_id} is not ledger record {manifest.head_seq}: the file's "
                        "manifest was changed, or the report was made without sealing")
    else:
        b = own.body
        if (b.get("seals") != manifest.seals or b.get("units") != manifest.units
                or b.get("start") != manifest.start or b.get("end") != manifest.end):
            problems.append("the file's manifest (units, period or seals) differs from the report's ledger record")
        if not is_pdf and b.get("data_sha256") != data_digest(data_lines):
            problems.append("the CSV's data lines were changed after the report was made "
                            f"(their SHA-256 differs from ledger record {own.seq})")
    readings = 0
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="report-verify") as pool:
        for seq, found in zip(manifest.seals, pool.map(lambda q: _recount(rows.get(q), store), manifest.seals)):
            e = rows.get(seq)
            if e is None or e.kind != "seal":
                problems.append(f"seal record {seq} is not in the ledger")
                continue
            b = e.body
            if isinstance(found, str):
                problems.append(f"seal record {seq}: {found}; not checked")
                continue
            count, sha = found
            readings += count
            when = f"{b['series']} {_day(float(b['start']), manifest.zone)}"
            if count != b.get("count"):
                problems.append(f"{when}: {count:,} readings now, {_n(b.get('count'))} when sealed")
            elif sha != b.get("sha256"):
                problems.append(f"{when}: {count:,} readings as when sealed, but a time or value differs from then")
    checked = (f"ledger records 1-{manifest.head_seq}, {len(manifest.seals):,} seals of {len(manifest.units)} "
               f"series ({readings:,} readings)" + ("" if is_pdf else ", the CSV's data lines"))
    return Verdict(not problems, problems, checked)


def _recount(e: Optional[ledger.Entry], store: Store) -> tuple[int, str] | str:
    """The count and digest of a seal's readings now; a sentence when they cannot be had."""
    if e is None or e.kind != "seal":
        return (0, "")
    b = e.body
    try:
        r = load_readings(store, str(b["series"]), float(b["start"]), float(b["end"]))
    except (KeyError, TypeError, ValueError) as exc:
        return f"cannot be read ({exc})"
    except StoreError as exc:
        return f"the store did not answer ({exc})"
    return len(r), digest(r)


def _n(x: object) -> str:
    return f"{x:,}" if type(x) is int else repr(x)
