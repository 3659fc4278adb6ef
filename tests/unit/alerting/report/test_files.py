"""The CSV and the PDF: what they hold, read back with the csv module and pypdf; names in any script."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from alerting.report import ReportRequest, make_report, pdfout, write_csv, write_pdf
from alerting.report.csvout import COLUMNS
from tests.support.reports import KEY, SERIES, ZONE, csv_rows, day_bounds, excursion_rows, fill, write_ledger
from vigil.core.stores import MemoryStore


def made(tmp_path: Path, series: str = SERIES, title: str = "", note: str = "door closed, stock checked",
         by: str = "alice") -> tuple[MemoryStore, Path, object]:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, series=series, raw_from=1200)
    state = tmp_path / "alerts.db"
    key = KEY.replace(SERIES, series)
    write_ledger(state, excursion_rows(start + 3600, key=key, note=note, by=by))
    report = make_report(store, state, ReportRequest([series], start, end, zone=ZONE, title=title,
                                                     limits={series: (None, -15.0)}), now=end + 60)
    return store, state, report


def test_csv_sections_parse_with_the_csv_module(tmp_path: Path) -> None:
    _, _, report = made(tmp_path)
    path = tmp_path / "log.csv"
    write_csv(report, path)  # type: ignore[arg-type]
    comments, rows = csv_rows(path)
    manifest = json.loads(next(c for c in comments if c.startswith("# manifest: "))[len("# manifest: "):])
    assert manifest["units"] == [SERIES] and manifest["seals"] and manifest["head_seq"] > manifest["seals"][-1]
    assert list(rows[0].keys()) == COLUMNS
    by_section: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_section.setdefault(r["section"], []).append(r)
    assert set(by_section) == {"summary", "calibration", "reading", "day", "excursion", "told", "ack", "note"}
    readings = by_section["reading"]
    assert [r["time"][11:16] for r in readings] == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]
    assert readings[0]["time"] == "2026-11-03T00:00:00+01:00" and readings[0]["corrected"] == "no"
    assert readings[-1]["corrected"] == "yes" and float(readings[-1]["raw"]) == pytest.approx(
        float(readings[-1]["value"]) + 0.4)
    (day,) = by_section["day"]
    assert (day["count"], day["min"], day["max"], day["corrected"]) == ("1440", "-18", "-16.05", "240")
    (x,) = by_section["excursion"]
    assert (x["peak"], x["duration_s"], x["rule"], x["severity"]) == ("-8", "2400", "freezer-warm", "critical")
    assert by_section["told"][0]["who"] == "kitchen-phone"
    assert (by_section["ack"][0]["who"], by_section["ack"][0]["how"]) == ("alice", "link")
    assert by_section["note"][0]["text"] == "door closed, stock checked"


def test_csv_cells_people_wrote_do_not_run_as_formulas(tmp_path: Path) -> None:
    _, _, report = made(tmp_path, note='=HYPERLINK("http://evil","click")', by="@bob")
    path = tmp_path / "log.csv"
    write_csv(report, path)  # type: ignore[arg-type]
    _, rows = csv_rows(path)
    note = next(r for r in rows if r["section"] == "note")
    assert note["text"] == "'=HYPERLINK(\"http://evil\",\"click\")" and note["who"] == "'@bob"


def test_pdf_text_metadata_and_footer(tmp_path: Path) -> None:
    _, _, report = made(tmp_path, title="Kitchen")
    path = tmp_path / "log.pdf"
    write_pdf(report, path)  # type: ignore[arg-type]
    reader = PdfReader(path)
    text = "\n".join(p.extract_text() for p in reader.pages)
    m = report.manifest  # type: ignore[attr-defined]
    for words in (f"Kitchen: {SERIES}", "Excursions", "kitchen-phone", "alice", "door closed, stock checked",
                  "Each day", "Readings", "240 of 1,440 readings corrected", f"Vigil report {m.report_id}",
                  f"ledger head record {m.head_seq}", m.head_hash[:40]):
        assert words in text, words
    keywords = str(reader.metadata["/Keywords"])
    assert keywords.startswith("vigil-report-manifest ")
    carried = json.loads(base64.urlsafe_b64decode(keywords.split()[1]))
    assert carried["id"] == m.report_id and carried["seals"] == m.seals and carried["head_hash"] == m.head_hash


def test_pdf_chart_is_vector_lines(tmp_path: Path) -> None:
    _, _, report = made(tmp_path)
    path = tmp_path / "log.pdf"
    write_pdf(report, path)  # type: ignore[arg-type]
    reader = PdfReader(path)
    page = reader.pages[0]
    content = page.get_contents().get_data()  # type: ignore[union-attr]
    assert b"/Image" not in content and not page.images
    assert content.count(b" l") > 1000  # the envelope: over a thousand line segments
    assert b"[" in content and b"] 0 d" in content  # the dashed limit line


@pytest.mark.parametrize("device", ["морозильник-1", "frys-🧊", "冷凍庫", "ψυγείο"])
def test_names_in_any_script_do_not_break_the_pdf(device: str, tmp_path: Path) -> None:
    series = f"{device}/t0/temperature"
    _, _, report = made(tmp_path, series=series, title="Кухня ❄ 🧊", by="Алиса 🙂")
    path = tmp_path / "log.pdf"
    write_pdf(report, path)  # type: ignore[arg-type]
    text = PdfReader(path).pages[0].extract_text()
    if pdfout._font_file("DejaVuSans.ttf") is not None and device != "冷凍庫":  # DejaVu has no CJK
        assert device.replace("🧊", "?") in text and "Кухня" in text and "Алиса" in text
    assert "temperature" in text


def test_newlines_and_bidi_overrides_in_notes_are_spaces_in_the_pdf(tmp_path: Path) -> None:
    _, _, report = made(tmp_path, note="first line\nsecond\u202eline\x00end", by="bob\u2028x")
    path = tmp_path / "log.pdf"
    write_pdf(report, path)  # type: ignore[arg-type]
    text = PdfReader(path).pages[0].extract_text()
    assert "first line second line end" in text and "bob x" in text


def test_without_dejavu_latin1_with_replacements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdfout, "_FONT_DIRS", ())
    _, _, report = made(tmp_path, series="морозильник-1/t0/temperature", title="Küche ❄")
    path = tmp_path / "log.pdf"
    write_pdf(report, path)  # type: ignore[arg-type]
    text = PdfReader(path).pages[0].extract_text()
    assert "Küche ?" in text and "???????????-1/t0/temperature" in text


def test_a_month_of_marks_breaks_across_pages_with_headers(tmp_path: Path) -> None:
    store = MemoryStore()
    start, _ = day_bounds("2026-11-01")
    end = start + 30 * 86400 - 3600  # Europe/Berlin has no DST change in November
    fill(store, start=start, minutes=30 * 1440)
    report = make_report(store, tmp_path / "a.db", ReportRequest([SERIES], start, end + 3600, interval=3600,
                                                                 zone=ZONE), now=end + 7200, seal=False)
    path = tmp_path / "log.pdf"
    write_pdf(report, path)
    reader = PdfReader(path)
    assert len(reader.pages) >= 4
    assert all("reading" in p.extract_text() for p in reader.pages[1:]), "table header on every page"
    assert "2026-11-30 23:00" in reader.pages[-1].extract_text()


def test_a_mark_without_a_reading_says_so_in_the_csv_and_the_pdf(tmp_path: Path) -> None:
    store = MemoryStore()
    start, end = day_bounds()
    fill(store, skip=(3 * 60, 9 * 60))  # nothing from 03:00 to 08:59: the 08:00 mark has none within 4 h
    report = make_report(store, tmp_path / "a.db", ReportRequest([SERIES], start, end, zone=ZONE), now=end + 1)
    csv, pdf = tmp_path / "log.csv", tmp_path / "log.pdf"
    write_csv(report, csv)
    write_pdf(report, pdf)
    _, rows = csv_rows(csv)
    marks = [(r["time"][11:16], r["reading_time"][11:16], r["value"], r["text"]) for r in rows
             if r["section"] == "reading"]
    # 04:00 takes 02:59, the last before the gap; at 08:00 that one is over 4 h old
    assert marks[1] == ("04:00", "02:59", "-17.05", "") and marks[2] == ("08:00", "", "", "no reading"), marks
    assert "2026-11-03 08:00 no reading" in PdfReader(pdf).pages[-1].extract_text()


def test_limits_come_from_the_threshold_rules_that_watch_the_unit(tmp_path: Path) -> None:
    from alerting.report.limits import limits_from_rules

    rules = tmp_path / "rules.yaml"
    rules.write_text("""
rules:
  - name: freezer-warm
    match: {metric: temperature, device: "freezer-*"}
    above: -15
    for: 10m
    notify: [ops]
  - name: freezer-very-warm
    match: {metric: temperature, device: "freezer-*"}
    above: -10
    notify: [ops]
  - name: freezer-too-cold
    match: {metric: temperature, device: freezer-1}
    below: -25
    notify: [ops]
  - name: fridge-warm
    match: {metric: temperature, device: "fridge-*"}
    above: 5
    notify: [ops]
receivers:
  ops: {urls: ["json://127.0.0.1:9/"]}
""")
    found = limits_from_rules(rules, [SERIES, "freezer-2/t0/temperature", "oven-1/t0/temperature"])
    assert found == {SERIES: (-25.0, -15.0), "freezer-2/t0/temperature": (None, -15.0)}
    (tmp_path / "broken.yaml").write_text("rules: [")
    assert limits_from_rules(tmp_path / "broken.yaml", [SERIES]) == {}
    assert limits_from_rules(tmp_path / "missing.yaml", [SERIES]) == {}
