"""Seals in the ledger and verify_file: the canonical digest, one seal per unit-day, tampering found in words."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from alerting import ledger
from alerting.report import ReportError, ReportRequest, make_report, verify_file, write_csv, write_pdf
from alerting.report.seal import Readings, digest
from tests.support.reports import SERIES, ZONE, day_bounds, excursion_rows, fill, write_ledger
from vigil.core.event import Event
from vigil.core.stores import MemoryStore


def test_the_canonical_form_is_24_big_endian_bytes_a_reading() -> None:
    r = Readings(np.array([1_000_000, 2_500_000], np.int64), np.array([-0.0, 3.25]), np.array([np.nan, 3.5]))
    expected = struct.pack(">qdd", 1_000_000, 0.0, float("nan")) + struct.pack(">qdd", 2_500_000, 3.25, 3.5)
    assert struct.pack(">d", float("nan")) == bytes.fromhex("7ff8000000000000")
    assert digest(r) == hashlib.sha256(expected).hexdigest()


def two_day_report(tmp_path: Path, store: MemoryStore, now_offset: float = 60.0) -> tuple[Path, object]:
    start, _ = day_bounds()
    end = start + 2 * 86400
    state = tmp_path / "alerts.db"
    report = make_report(store, state, ReportRequest([SERIES], start, end, zone=ZONE), now=end + now_offset)
    return state, report


def test_complete_days_are_sealed_once_and_the_report_recorded(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=2 * 1440)
    start, _ = day_bounds()
    state = tmp_path / "alerts.db"
    write_ledger(state, excursion_rows(start + 3600))
    # the second day is not over yet: only the first is sealed
    report = make_report(store, state, ReportRequest([SERIES], start, start + 2 * 86400, zone=ZONE),
                         now=start + 86400 + 3600)
    conn = sqlite3.connect(state)
    seals = ledger.entries(conn, kinds=["seal"])
    assert [(e.key, e.body["start"], e.body["end"], e.body["count"]) for e in seals] == [
        (SERIES, start, start + 86400, 1440)]
    assert report.manifest.seals == [seals[0].seq]
    (own,) = ledger.entries(conn, kinds=["report"])
    assert (own.key, own.body["seals"], own.body["units"], own.body["head_seq"]) == (
        report.manifest.report_id, [seals[0].seq], [SERIES], 6)
    assert (report.manifest.head_seq, report.manifest.head_hash) == (own.seq, own.hash)
    # a second report over the same days adds the missing seal only, and reuses the first
    again = make_report(store, state, ReportRequest([SERIES], start, start + 2 * 86400, zone=ZONE),
                        now=start + 3 * 86400)
    seals = ledger.entries(conn, kinds=["seal"])
    assert len(seals) == 2 and again.manifest.seals == [s.seq for s in seals]
    assert ledger.verify(conn) == []
    conn.close()


def test_verify_ok_then_each_kind_of_tampering_in_words(tmp_path: Path) -> None:
    store = MemoryStore()
    events = fill(store, minutes=2 * 1440)
    state, report = two_day_report(tmp_path, store)
    pdf, csv = tmp_path / "log.pdf", tmp_path / "log.csv"
    write_pdf(report, pdf)  # type: ignore[arg-type]
    write_csv(report, csv)  # type: ignore[arg-type]
    for path in (pdf, csv):
        verdict = verify_file(path, store, state)
        assert verdict.ok and verdict.problems == [], verdict
        assert "2 seals of 1 series (2,880 readings)" in verdict.checked
    # a stored reading changed (same time, other value) on the first day
    e = events[100]
    store.write([Event(device=e.device, sensor=e.sensor, metric=e.metric, value=e.value + 5, ts=e.ts)])
    verdict = verify_file(pdf, store, state)
    assert not verdict.ok and verdict.problems == [
        f"{SERIES} 2026-11-03: 1,440 readings as when sealed, but a time or value differs from then"]
    store.write([e])
    assert verify_file(pdf, store, state).ok  # put back: the digest matches again
    # a reading deleted on the second day
    store._series[e.series].pop(events[2000].ts_us)
    assert verify_file(csv, store, state).problems == [
        f"{SERIES} 2026-11-04: 1,439 readings now, 1,440 when sealed"]


def test_a_changed_or_deleted_ledger_row_is_found(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=2 * 1440)
    state, report = two_day_report(tmp_path, store)
    pdf = tmp_path / "log.pdf"
    write_pdf(report, pdf)  # type: ignore[arg-type]
    conn = sqlite3.connect(state, isolation_level=None)
    seal_seq = report.manifest.seals[0]  # type: ignore[attr-defined]
    conn.execute("UPDATE ledger SET body = replace(body, '\"count\":1440', '\"count\":1439') WHERE seq = ?",
                 (seal_seq,))
    problems = verify_file(pdf, store, state).problems
    assert f"ledger record {seal_seq} (seal {SERIES}) was changed after it was written" in problems
    assert f"{SERIES} 2026-11-03: 1,440 readings now, 1,439 when sealed" in problems
    conn.execute("DELETE FROM ledger WHERE seq = ?", (seal_seq,))
    problems = verify_file(pdf, store, state).problems
    assert f"ledger record {seal_seq} missing (deleted)" in problems
    assert f"seal record {seal_seq} is not in the ledger" in problems
    conn.close()


def test_an_edited_csv_or_manifest_is_found(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=2 * 1440)
    state, report = two_day_report(tmp_path, store)
    csv = tmp_path / "log.csv"
    write_csv(report, csv)  # type: ignore[arg-type]
    text = csv.read_text("utf-8")
    edited = tmp_path / "edited.csv"
    edited.write_text(text.replace(",-16.05,", ",-17.05,", 1), "utf-8")
    assert text != edited.read_text("utf-8")
    assert verify_file(edited, store, state).problems == [
        f"the CSV's data lines were changed after the report was made (their SHA-256 differs from ledger record "
        f"{report.manifest.head_seq})"]  # type: ignore[attr-defined]
    seals = report.manifest.seals  # type: ignore[attr-defined]
    fewer = text.replace(f'"seals":[{seals[0]},{seals[1]}]', f'"seals":[{seals[1]}]')
    assert fewer != text
    edited.write_text(fewer, "utf-8")
    assert verify_file(edited, store, state).problems == [
        "the file's manifest (units, period or seals) differs from the report's ledger record"]


def test_no_sealing_means_nothing_written_and_nothing_to_verify(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store)
    start, end = day_bounds()
    state = tmp_path / "alerts.db"
    write_ledger(state, excursion_rows(start + 3600))
    before = state.read_bytes()
    report = make_report(store, state, ReportRequest([SERIES], start, end, zone=ZONE), now=end + 1, seal=False)
    assert state.read_bytes() == before and report.manifest.seals == [] and report.units[0].excursions
    csv = tmp_path / "log.csv"
    write_csv(report, csv)
    problems = verify_file(csv, store, state).problems
    assert problems == [f"report {report.manifest.report_id} is not ledger record 6: the file's manifest was "
                        "changed, or the report was made without sealing"]


@pytest.mark.parametrize(("content", "words"), [
    (b"", "no Vigil manifest in this CSV"),
    (b"section,series\nreading,x\n", "no Vigil manifest in this CSV"),
    (b"# manifest: {not json\n", "cannot be read"),
    (b'# manifest: {"v":1,"units":"x"}\n', "cannot be read"),
    (b'# manifest: {"v":2}\n', "version 1"),
    (b'# manifest: {"v":1,"id":"x","start":0,"end":1,"zone":"UTC","units":[],"head_seq":1,"head_hash":"h",'
     b'"made_at":0,"seals":[' + b",".join(b"1" for _ in range(90_000)) + b']}\n', "more series or seals"),
    (b"# manifest: " + b"[" * 100_000 + b"\n", "cannot be read"),
    (b"%PDF-1.4\n%%EOF\n", "no Vigil manifest in this PDF"),
    (b"%PDF-1.4\n/Keywords (vigil-report-manifest !!!)", "no Vigil manifest in this PDF"),
    (b"%PDF-1.4\n/Keywords (vigil-report-manifest AAAA)", "cannot be read"),
    (b"\xff\xfe\x00garbage", "no Vigil manifest"),
])
def test_files_that_are_not_reports(content: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(ReportError, match=words):
        verify_file(path, MemoryStore(), tmp_path / "alerts.db")
    with pytest.raises(ReportError, match="cannot read"):
        verify_file(tmp_path / "missing.pdf", MemoryStore(), tmp_path / "alerts.db")


def test_verify_without_the_state_file_says_so(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=2 * 1440)
    _, report = two_day_report(tmp_path, store)
    csv = tmp_path / "log.csv"
    write_csv(report, csv)  # type: ignore[arg-type]
    verdict = verify_file(csv, store, tmp_path / "elsewhere.db")
    assert not verdict.ok and "no ledger in" in verdict.problems[0] and not (tmp_path / "elsewhere.db").exists()
