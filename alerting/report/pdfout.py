"""The report as a PDF (fpdf2): per unit a page with a chart drawn as vector lines, the excursions with
the people, the days, and the readings at the marks; the manifest in the metadata and in every footer.

Text is set in DejaVu Sans when Debian's TTF is installed (any script it covers: Cyrillic, Greek, ...),
else in Helvetica with what Latin-1 lacks replaced; a character the font lacks becomes ``?``.
docs/reports.md says why fpdf2 (the figures of bench/report_libs.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from fpdf import FPDF

from vigil.core.sitetime import format_value

from .build import excursion_people
from .model import Manifest, Report, ReportError, UnitReport

__all__ = ["read_pdf_manifest", "write_pdf"]

KEYWORD = "vigil-report-manifest"
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
_RE = re.compile(rb"vigil-report-manifest ([A-Za-z0-9_=-]+)")


def _font_file(name: str) -> Optional[Path]:
    for d in _FONT_DIRS:
        p = Path(d) / name
        if p.is_file():
            return p
    return None


def _ranges(seqs: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``3-5,9``."""
    spans: list[list[int]] = []
    for s in sorted(set(seqs)):
        if spans and spans[-1][1] == s - 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


class _Pdf(FPDF):
    def __init__(self, report: Report) -> None:
        super().__init__(format="A4")
        self.report = report
        regular, bold = _font_file("DejaVuSans.ttf"), _font_file("DejaVuSans-Bold.ttf")
        if regular is not None:
            self.add_font("body", "", str(regular))
            self.add_font("body", "B", str(bold or regular))
            self.family = "body"
        else:
            self.family = "helvetica"
        self.set_auto_page_break(True, margin=14)
        self.set_margins(12, 12, 12)

    def text_of(self, text: str) -> str:
        """``text`` in characters the current font has (others: ``?``); control, format and line-breaking
        characters (a newline in a note, a bidi override in a name) as a space."""
        text = "".join(" " if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" else c for c in text)
        if self.family == "helvetica":
            return text.encode("latin-1", "replace").decode("latin-1")
        cmap = getattr(self.current_font, "cmap", None)
        if not cmap:
            return text
        return "".join(c if ord(c) in cmap or c == " " else "?" for c in text)

    def style(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def put(self, w: float, h: float, text: str, border: Literal[0, 1] | str = 0, align: str = "L",
            ln: bool = False) -> None:
        self.cell(w, h, self.text_of(text), border=border, align=align,
                  new_x="LMARGIN" if ln else "RIGHT", new_y="NEXT" if ln else "TOP")

    def footer(self) -> None:
        m = self.report.manifest
        self.set_y(-12)
        self.style(5.5)
        self.set_text_color(90)
        self.put(0, 2.6, f"Vigil report {m.report_id} | {_day(m.start, self)} to {_day(m.end, self)} {m.zone} | "
                 f"page {self.page_no()}/{{nb}} | check: vigil report verify FILE", ln=True)
        self.multi_cell(0, 2.6, self.text_of(f"ledger head record {m.head_seq} sha256 {m.head_hash} | "
                                             f"seals (ledger records) {_ranges(m.seals)}"),
                        new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)


def _day(ts: float, pdf: _Pdf) -> str:
    return dt.datetime.fromtimestamp(ts, pdf.report.request.zone).strftime("%Y-%m-%d %H:%M")


def _time(ts: Optional[float], zone: dt.tzinfo) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M")


def _dur(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 1440}d {m % 1440 // 60}h {m % 60:02d}m" if m >= 1440 else f"{m // 60}h {m % 60:02d}m"


def _v(x: Optional[float], unit: str = "") -> str:
    return "" if x is None else format_value(x, 1) + (f" {unit}" if unit else "")


def write_pdf(report: Report, path: str | Path) -> None:
    pdf = _Pdf(report)
    m = report.manifest
    pdf.set_title(report.title)
    pdf.set_subject(f"Vigil temperature log {m.report_id}")
    pdf.set_author("Vigil")
    pdf.set_creator("Vigil")
    pdf.set_keywords(f"{KEYWORD} " + base64.urlsafe_b64encode(m.to_json().encode("utf-8")).decode("ascii"))
    pdf.set_creation_date(dt.datetime.fromtimestamp(report.made_at, dt.timezone.utc))
    for u in report.units:
        _unit_pages(pdf, report, u)
    pdf.output(str(path))


def _unit_pages(pdf: _Pdf, report: Report, u: UnitReport) -> None:
    zone = report.request.zone
    pdf.add_page()
    pdf.style(13, bold=True)
    pdf.put(0, 7, f"{report.title}: {u.series}", ln=True)
    pdf.style(8.5)
    pdf.put(0, 4.5, f"{_time(report.request.start, zone)} to {_time(report.request.end, zone)} "
            f"({report.zone_name}), a reading every {_dur(report.request.interval)}", ln=True)
    summary = (f"{u.count:,} readings; min {_v(u.low, u.unit)}, max {_v(u.high, u.unit)}, mean {_v(u.mean, u.unit)}; "
               f"{len(u.excursions)} excursion{'s' if len(u.excursions) != 1 else ''}") if u.count else "no readings"
    pdf.put(0, 4.5, summary, ln=True)
    for line in u.calibration or ["no correction recorded"]:
        pdf.put(0, 4.5, f"Calibration: {line}", ln=True)
    for w in report.warnings:
        if w.startswith(u.series + " "):
            pdf.set_text_color(180, 0, 0)
            pdf.put(0, 4.5, f"Warning: {w}", ln=True)
            pdf.set_text_color(0)
    pdf.ln(2)
    _chart(pdf, report, u, pdf.get_y(), 62)
    _excursions(pdf, u, zone)
    _days(pdf, u)
    _marks(pdf, u, zone)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _chart(pdf: _Pdf, report: Report, u: UnitReport, top: float, height: float) -> None:
    left, width = pdf.l_margin + 12, pdf.epw - 12
    t0, t1 = report.request.start, report.request.end
    finite_lo = u.chart_low[~np.isnan(u.chart_low)]
    finite_hi = u.chart_high[~np.isnan(u.chart_high)]
    values = [float(finite_lo.min())] if finite_lo.size else []
    values += [float(finite_hi.max())] if finite_hi.size else []
    values += [v for v in u.limits if v is not None]
    values += [x.peak for x in u.excursions if x.peak is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((hi - lo) * 0.08, 0.5)
    lo, hi = lo - pad, hi + pad

    def x_of(t: Any) -> Any:
        return left + (t - t0) / (t1 - t0) * width

    def y_of(v: Any) -> Any:
        return top + height - (v - lo) / (hi - lo) * height

    pdf.set_fill_color(255, 215, 215)
    for x in u.excursions:
        a, b = max(x.since, t0), min(x.ended if x.ended is not None else min(t1, report.made_at), t1)
        if b > a:
            pdf.rect(x_of(a), top, max(x_of(b) - x_of(a), 0.3), height, style="F")
    pdf.set_draw_color(160)
    pdf.set_line_width(0.2)
    pdf.rect(left, top, width, height)
    pdf.style(6.5)
    for v in _nice_ticks(lo, hi):
        y = y_of(v)
        pdf.set_draw_color(225)
        pdf.line(left, y, left + width, y)
        pdf.set_xy(pdf.l_margin, y - 1.5)
        pdf.put(11, 3, format_value(v, 1), align="R")
    days = max(1.0, (t1 - t0) / 86400)
    step = 86400 * (1 if days <= 10 else 7 if days > 40 else 2) if days > 1.5 else 4 * 3600
    tick = t0
    while tick < t1:
        pdf.set_draw_color(225)
        pdf.line(x_of(tick), top, x_of(tick), top + height)
        pdf.set_xy(x_of(tick) - 8, top + height + 0.5)
        label = "%d %b" if step >= 86400 else "%H:%M"
        pdf.put(16, 3, dt.datetime.fromtimestamp(tick, report.request.zone).strftime(label), align="C")
        tick += step
    pdf.set_draw_color(200, 0, 0)
    pdf.set_dash_pattern(dash=1.2, gap=0.8)
    for limit in u.limits:
        if limit is not None:
            pdf.line(left, y_of(limit), left + width, y_of(limit))
    pdf.set_dash_pattern()
    # the envelope: per bucket its low then its high, the line broken where readings are missing
    ts = u.chart_ts
    w = (t1 - t0) / max(len(ts), 1)
    full = ~np.isnan(u.chart_low)
    ts, low, high = ts[full], u.chart_low[full], u.chart_high[full]
    xs = np.column_stack([x_of(ts), x_of(ts + w / 2)]).ravel()
    ys = np.column_stack([y_of(low), y_of(high)]).ravel()
    breaks = (np.nonzero(np.diff(ts) > max(3 * u.spacing, 1.5 * w))[0] + 1) * 2
    pdf.set_draw_color(20, 60, 160)
    pdf.set_line_width(0.25)
    for seg_x, seg_y in zip(np.split(xs, breaks), np.split(ys, breaks)):
        pdf.polyline(list(zip(seg_x.tolist(), seg_y.tolist())))
    pdf.set_draw_color(0)
    pdf.set_y(top + height + 5)
    pdf.style(6.5)
    pdf.put(0, 3, f"{u.unit or 'value'}; blue: lowest and highest reading in each {_dur(w)}; red bands: excursions"
            + ("; dashed: limits" if any(v is not None for v in u.limits) else ""), ln=True)
    pdf.ln(2)


def _table(pdf: _Pdf, title: str, widths: list[float], header: list[str], rows: list[list[str]],
           after: Optional[dict[int, list[str]]] = None) -> None:
    if not rows:
        return
    if pdf.will_page_break(16):
        pdf.add_page()
    pdf.style(9.5, bold=True)
    pdf.put(0, 6, title, ln=True)

    def head() -> None:
        pdf.style(7, bold=True)
        for w, h in zip(widths, header):
            pdf.put(w, 4.2, h, border="B")
        pdf.ln(4.2)
        pdf.style(7)

    head()
    for i, row in enumerate(rows):
        if pdf.will_page_break(4):
            pdf.add_page()
            head()
        for w, cell in zip(widths, row):
            pdf.put(w, 3.8, cell)
        pdf.ln(3.8)
        for line in (after or {}).get(i, []):
            if pdf.will_page_break(3.6):
                pdf.add_page()
            pdf.set_x(pdf.l_margin + widths[0])
            pdf.multi_cell(pdf.epw - widths[0], 3.6, pdf.text_of(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _excursions(pdf: _Pdf, u: UnitReport, zone: dt.tzinfo) -> None:
    rows, after = [], {}
    for i, x in enumerate(u.excursions):
        told, acks = excursion_people(x, zone)
        end = _time(x.ended, zone) if x.ended is not None else "still on"
        rows.append([_time(x.since, zone), end, _dur(x.duration(pdf.report.made_at)), _v(x.peak, u.unit),
                     x.rule[:60]])
        # who was told and who acknowledged can be long (several people, times): whole lines below the row
        after[i] = [f"told: {told}", f"acknowledged: {acks}"]
        after[i] += [f"note by {n['by']} {_time(n['at'], zone)}: {n['text']}" for n in x.notes]
        after[i] += [f"ack comment by {a['by']}: {a['comment']}" for a in x.acks if a.get("comment")]
    _table(pdf, "Excursions", [28, 28, 18, 18, pdf.epw - 92], ["start", "end", "duration", "peak", "rule"],
           rows, after)


def _days(pdf: _Pdf, u: UnitReport) -> None:
    rows = [[d.day, f"{d.count:,}", _v(d.low), _v(d.high), _v(d.mean), f"{d.corrected:,}" if d.corrected else ""]
            for d in u.days]
    _table(pdf, f"Each day ({u.unit})", [30, 22, 22, 22, 22, 30],
           ["day", "readings", "min", "max", "mean", "corrected"], rows)


def _marks(pdf: _Pdf, u: UnitReport, zone: dt.tzinfo) -> None:
    cells = []
    for m in u.marks:
        shown = "no reading" if m.value is None else _v(m.value) + (f" (raw {_v(m.raw)})" if m.raw is not None else "")
        cells.append([_time(m.at, zone), shown])
    rows = [[text for cell in cells[i:i + 3] for text in cell] for i in range(0, len(cells), 3)]
    _table(pdf, f"Readings ({u.unit}; the one at or just before each time)", [24, 38] * 3,
           ["time", "reading"] * 3, rows)


def read_pdf_manifest(data: bytes) -> Manifest:
    """The manifest a Vigil PDF carries in its keywords; ReportError when it has none."""
    found = _RE.findall(data)
    if not found:
        raise ReportError("no Vigil manifest in this PDF's metadata (keywords)")
    try:
        text = base64.urlsafe_b64decode(found[-1]).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportError(f"the PDF's manifest cannot be read ({exc})") from None
    return Manifest.from_json(text)
