"""The report as one CSV file: ``#`` lines (the manifest), then one header and rows with a ``section`` column.

Sections: ``summary`` (per unit), ``calibration`` (a sentence per change in force), ``reading`` (the
reading at each mark, or ``no reading``), ``day`` (count, min, max, mean per site day), ``excursion``
(start, end, peak, duration), ``told``, ``ack`` and ``note`` (the people and what they did). Times are
ISO 8601 in the site zone with their UTC offset. Read it with ``csv.DictReader`` after skipping the lines
that start with ``#``. The data lines' SHA-256 is in the ledger's ``report`` row, so ``vigil report
verify`` finds a changed figure.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any, Optional

from .model import Manifest, Report, ReportError

__all__ = ["COLUMNS", "MANIFEST_PREFIX", "data_digest", "read_csv_manifest", "render_data", "write_csv"]

COLUMNS = ["section", "series", "time", "until", "reading_time", "value", "raw", "corrected", "count", "min",
           "max", "mean", "peak", "duration_s", "rule", "severity", "who", "how", "text"]
MANIFEST_PREFIX = "# manifest: "


def _iso(ts: Optional[float], zone: dt.tzinfo) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def _num(x: Optional[float]) -> str:
    return "" if x is None else format(x, ".10g")


def _safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ first) -- names and notes come from people."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_data(report: Report) -> str:
    """The header and data lines, exactly as written after the manifest (their hash is sealed)."""
    zone = report.request.zone
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)

    def row(**cells: Any) -> None:
        w.writerow([_safe(str(cells.get(c, ""))) if c in ("series", "who", "how", "text", "rule", "severity")
                    else cells.get(c, "") for c in COLUMNS])

    for u in report.units:
        row(section="summary", series=u.series, time=_iso(report.request.start, zone),
            until=_iso(report.request.end, zone), count=u.count, min=_num(u.low), max=_num(u.high),
            mean=_num(u.mean), corrected=u.corrected, text=u.unit)
        for line in u.calibration:
            row(section="calibration", series=u.series, text=line)
        for m in u.marks:
            row(section="reading", series=u.series, time=_iso(m.at, zone), reading_time=_iso(m.ts, zone),
                value=_num(m.value), raw=_num(m.raw),
                corrected="" if m.value is None else ("yes" if m.raw is not None else "no"),
                text="no reading" if m.value is None else "")
        for d in u.days:
            row(section="day", series=u.series, time=_iso(d.start, zone), until=_iso(d.end, zone), count=d.count,
                min=_num(d.low), max=_num(d.high), mean=_num(d.mean), corrected=d.corrected,
                text=d.day if d.count else f"{d.day} no readings")
        for x in u.excursions:
            row(section="excursion", series=u.series, time=_iso(x.since, zone), until=_iso(x.ended, zone),
                value=_num(x.value), peak=_num(x.peak),
                duration_s="" if x.ended is None else f"{x.ended - x.since:.0f}", rule=x.rule,
                severity=x.severity, text=x.message if x.ended is not None else f"still on: {x.message}")
            for t in x.told:
                row(section="told", series=u.series, time=_iso(t["at"], zone), rule=x.rule, who=t["receiver"],
                    how=t["kind"], until=_iso(x.since, zone))
            for a in x.acks:
                row(section="ack", series=u.series, time=_iso(a["at"], zone), rule=x.rule, who=a["by"],
                    how=a["via"], text=a["comment"], until=_iso(x.since, zone))
            for n in x.notes:
                row(section="note", series=u.series, time=_iso(n["at"], zone), rule=x.rule, who=n["by"],
                    text=n["text"], until=_iso(x.since, zone))
    return buf.getvalue()


def data_digest(text: str) -> str:
    """SHA-256 of the data lines, line ends taken as LF (a CSV re-saved with other line ends is the same)."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def manifest_lines(report: Report) -> list[str]:
    m = report.manifest
    zone = report.request.zone
    seals = ",".join(str(s) for s in m.seals) or "none (made without sealing)"
    lines = [
        f"# {report.title}: Vigil report {m.report_id}",
        f"# period: {_iso(m.start, zone)} to {_iso(m.end, zone)} ({m.zone})",
        f"# units: {' '.join(m.units)}",
        f"# ledger head: record {m.head_seq} sha256 {m.head_hash}",
        f"# seals (ledger records): {seals}",
        "# check it: vigil report verify THIS-FILE",
        MANIFEST_PREFIX + m.to_json(),
    ]
    lines += [f"# warning: {w}" for w in report.warnings]
    return [line.replace("\r", " ").replace("\n", " ") for line in lines]


def write_csv(report: Report, path: str | Path) -> None:
    """The manifest as ``#`` lines, then the data (UTF-8)."""
    text = "".join(line + "\r\n" for line in manifest_lines(report)) + report.data_csv
    Path(path).write_bytes(text.encode("utf-8"))


def read_csv_manifest(data: bytes) -> tuple[Manifest, str]:
    """The manifest of a report CSV and its data lines; ReportError when it has none."""
    text = data.decode("utf-8", "replace")
    if len(text) > 0 and not text.startswith("#"):
        raise ReportError("no Vigil manifest in this CSV (a '# manifest:' line at its top)")
    manifest: Optional[Manifest] = None
    pos = 0
    while text.startswith("#", pos):
        end = text.find("\n", pos)
        line = text[pos: len(text) if end < 0 else end].rstrip("\r")
        if line.startswith(MANIFEST_PREFIX) and manifest is None:
            manifest = Manifest.from_json(line[len(MANIFEST_PREFIX):])
        pos = len(text) if end < 0 else end + 1
    if manifest is None:
        raise ReportError("no Vigil manifest in this CSV (a '# manifest:' line at its top)")
    return manifest, text[pos:]
