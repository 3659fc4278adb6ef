"""`vigil report` and `vigil report verify` as real processes, on a SQLite store and on a private influxd."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.support.bridge import VIGIL
from tests.support.reports import SERIES, csv_rows, fill
from tests.support.reports import site as make_site
from tests.support.services import Influxd
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration


def vigil(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "report", *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """vigil.yaml (Europe/Berlin), two days of two freezers in its SQLite store, an excursion in its ledger."""
    return make_site(tmp_path)


def test_report_then_verify_then_tampering_found(site: Path, tmp_path: Path) -> None:
    pdf, csv = tmp_path / "log.pdf", tmp_path / "log.csv"
    done = vigil("-c", str(site), "--series", "freezer-*/t0/temperature", "--from", "2026-11-03", "--to", "2026-11-04",
                 "--every", "2h", "--pdf", str(pdf), "--csv", str(csv), "--title", "Kitchen")
    assert done.returncode == 0, done.stderr
    assert "2 series, 5,760 readings, 1 excursions; 4 seals" in done.stdout, done.stdout
    assert "reading 1/2 freezer-1/t0/temperature" in done.stderr  # the progress line
    text = PdfReader(pdf).pages[0].extract_text()
    assert f"Kitchen: {SERIES}" in text and "kitchen-phone" in text
    _, rows = csv_rows(csv)
    assert sum(r["section"] == "reading" for r in rows) == 2 * 24
    for path in (pdf, csv):
        ok = vigil("-c", str(site), "verify", str(path))
        assert ok.returncode == 0 and ok.stdout.startswith(f"{path}: ok (ledger records 1-11, 4 seals"), ok
    # the options may also sit between the words, as people type them
    ok = vigil("verify", "-c", str(site), str(pdf))
    assert ok.returncode == 0 and ok.stdout.startswith(f"{pdf}: ok"), ok
    db = sqlite3.connect(tmp_path / "data" / "vigil.db")
    db.execute("UPDATE readings SET value = value + 1 WHERE device = 'freezer-2' AND ts = "
               "(SELECT min(ts) FROM readings WHERE device = 'freezer-2')")
    db.commit()
    db.close()
    bad = vigil("-c", str(site), "verify", str(pdf))
    assert bad.returncode == 1
    assert ("freezer-2/t0/temperature 2026-11-03: 1,440 readings as when sealed, but a time or value differs "
            "from then") in bad.stdout, bad.stdout
    state = sqlite3.connect(tmp_path / "data" / "alerts.db")
    state.execute("DELETE FROM ledger WHERE seq = 3")  # the excursion's "cleared" row
    state.commit()
    state.close()
    bad = vigil("-c", str(site), "verify", str(csv))
    assert bad.returncode == 1 and "ledger record 3 missing (deleted)" in bad.stdout, bad.stdout
    assert "2 problems" in bad.stdout


def test_on_influxdb(tmp_path: Path, influxd: Influxd, influx_db: str) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {tmp_path}/data\nstore:\n  url: {influxd.url(influx_db)}\n"
                      "dashboard:\n  timezone: Europe/Berlin\n")
    with open_store(influxd.url(influx_db)) as store:
        fill(store, minutes=1440, raw_from=600)
    out = tmp_path / "day.csv"
    done = vigil("-c", str(config), "--series", SERIES, "--day", "2026-11-03", "--csv", str(out))
    assert done.returncode == 0 and "1,440 readings, 0 excursions; 1 seals" in done.stdout, done
    _, rows = csv_rows(out)
    assert [r["corrected"] for r in rows if r["section"] == "reading"] == ["no", "no", "no", "yes", "yes", "yes"]
    assert vigil("-c", str(config), "verify", str(out)).returncode == 0


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["--series", "nope/t0/temperature", "--day", "2026-11-03", "--csv", "x.csv"], 2,
     "no series 'nope/t0/temperature'"),
    (["--series", "x*/t0/temperature", "--day", "2026-11-03", "--csv", "x.csv"], 2, "stored: freezer-1/t0/temperature"),
    (["--series", "freezer-1/t0", "--day", "2026-11-03", "--csv", "x.csv"], 2, "no series"),
    (["--series", "a" * 5000 + "/t0/temperature", "--day", "2026-11-03", "--csv", "x.csv"], 2, "no series"),
    (["--series", SERIES, "--day", "2026-02-30", "--csv", "x.csv"], 2, "is not a day"),
    (["--series", SERIES, "--month", "2026-13", "--csv", "x.csv"], 2, "is not a month"),
    (["--series", SERIES, "--week", "W45", "--csv", "x.csv"], 2, "is not a week"),
    (["--series", SERIES, "--from", "2026-11-03", "--csv", "x.csv"], 2, "which period"),
    (["--series", SERIES, "--day", "2026-11-03", "--to", "2026-11-04", "--csv", "x.csv"], 2, "--to goes with --from"),
    (["--series", SERIES, "--from", "2026-11-04", "--to", "2026-11-02", "--csv", "x.csv"], 2, "after its start"),
    (["--series", SERIES, "--from", "2000-01-01", "--to", "2026-11-04", "--csv", "x.csv"], 2, "400 days"),
    (["--series", SERIES, "--from", "tomorrow", "--to", "2026-11-04", "--csv", "x.csv"], 2, "not a date"),
    (["--series", SERIES, "--day", "2999-01-01", "--csv", "x.csv"], 2, "not begun"),
    (["--series", SERIES, "--day", "2026-11-03", "--every", "nan", "--csv", "x.csv"], 2, "--every"),
    (["--series", SERIES, "--day", "2026-11-03", "--every", "-4h", "--csv", "x.csv"], 2, "--every"),
    (["--series", SERIES, "--day", "2026-11-03", "--every", "1s", "--csv", "x.csv"], 2, "at least 1 minute"),
    (["--series", SERIES, "--month", "2026-11", "--every", "1m", "--csv", "x.csv"], 2, "20,000"),
    (["--series", SERIES, "--day", "2026-11-03"], 2, "--pdf FILE and/or --csv FILE"),
    (["--day", "2026-11-03", "--csv", "x.csv"], 2, "name a series"),
    (["--series", SERIES, "--day", "2026-11-03", "--csv", "x.csv", "--title", "a\u202eb"], 2, "the title"),
    (["--series", SERIES, "--day", "2026-11-03", "--csv", "x.csv", "--title", "t" * 300], 2, "the title"),
    (["--series", SERIES, "--day", "2026-11-03", "--csv", "/nonexistent/dir/x.csv"], 2, "no directory"),
    (["--series", SERIES, "--day", "2026-10-01", "--csv", "x.csv"], 1, "no readings of freezer-1/t0/temperature"),
    (["verify"], 2, "vigil report verify FILE"),
    (["verify", "a", "b"], 2, "vigil report verify FILE"),
    (["make", "x"], 2, "vigil report verify FILE"),
    (["verify", "/nonexistent.pdf"], 1, "cannot read"),
])
def test_hostile_arguments(site: Path, tmp_path: Path, argv: list[str], code: int, words: str) -> None:
    before = (tmp_path / "data" / "alerts.db").read_bytes()
    done = vigil("-c", str(site), *argv, cwd=tmp_path)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.csv").exists()
    assert (tmp_path / "data" / "alerts.db").read_bytes() == before  # nothing sealed


@pytest.mark.parametrize("content", [b"", b"\x00" * 1000, b"%PDF-1.7\n" + b"A" * 100_000, b"# manifest: {}\n",
                                     b"# manifest: " + b"[" * 50_000 + b"\n", "# manifest: ü\n".encode("latin-1")])
def test_verify_refuses_files_that_are_not_reports(site: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(content)
    done = vigil("-c", str(site), "verify", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "manifest" in done.stderr, done.stderr


def test_help_teaches() -> None:
    done = subprocess.run([VIGIL, "report", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for words in ("temperature log", "--week", "verify", "examples:", "exit status", "sealed", "docs/reports.md"):
        assert words in done.stdout, words
