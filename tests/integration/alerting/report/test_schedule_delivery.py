"""Scheduled reports for real: readings in a SQLite store, the report made by alerting.report, sent by apprise
to a local HTTP receiver (json://, attachments as base64) and a local SMTP server (mailto://); the files
received are parsed and verified against the store and the ledger. Hostile ``reports:`` through
``vigil rules check`` (a real process)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from alerting.report import verify_file
from alerting.report.schedule import ReportScheduler
from alerting.rules import load_rules_text
from alerting.state import StateDB
from tests.support.notify import Receiver, receiver
from tests.support.services import free_port
from tests.support.smtpsink import SmtpSink, smtp_sink
from vigil.core.clock import ManualClock
from vigil.core.event import Event
from vigil.core.stores.sqlite import SqliteStore

__all__ = ["receiver", "smtp_sink"]  # fixtures of tests/support, offered to this module

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
ROOT = Path(__file__).resolve().parents[4]


def local(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=BERLIN).timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """Two freezers and a fridge, a reading every 10 minutes on the 2nd of December (Berlin)."""
    with SqliteStore(tmp_path / "store.db", retention=10 * 365 * 86400.0) as s:
        t0 = local("2026-12-02 00:00")
        s.write([Event(device, "t0", "temperature", value + (i % 6) * 0.1, t0 + i * 600, unit="°C")
                 for i in range(144) for device, value in (("freezer-1", -18.0), ("freezer-2", -20.0),
                                                           ("fridge-1", 4.0))])
        yield s


def rules(receivers: dict[str, str]) -> str:
    lines = "".join(f'  {name}: ["{url}"]\n' for name, url in receivers.items())
    return f"""receivers:
{lines}reports:
  - name: freezers-daily
    series: ["freezer-*/t0/temperature"]
    every: day
    at: "07:00"
    interval: 1h
    receivers: [{", ".join(receivers)}]
rules:
  - {{name: freezer-warm, match: {{metric: temperature, device: "freezer-*"}}, above: -15}}
"""


def scheduler(tmp_path: Path, store: SqliteStore, text: str, clock: ManualClock) -> ReportScheduler:
    state = tmp_path / "alerts.db"
    StateDB(str(state)).close()
    (tmp_path / "rules.yaml").write_text(text)
    config, _ = load_rules_text(text)
    return ReportScheduler(lambda: config.notify, store, state, clock, zone=BERLIN,
                           rules_path=str(tmp_path / "rules.yaml"))


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    return list(csv.DictReader(io.StringIO("".join(ln for ln in text.splitlines(True) if not ln.startswith("#")))))


async def test_a_daily_report_reaches_a_webhook_and_a_mailbox_as_attachments(
        tmp_path: Path, store: SqliteStore, receiver: Receiver, smtp_sink: SmtpSink) -> None:
    clock = ManualClock(local("2026-12-03 06:59"))
    s = scheduler(tmp_path, store, rules({"hook": receiver.url("reports"), "boss": smtp_sink.url()}), clock)
    try:
        await s.step(clock.now())  # the 1st has no readings: skipped, nothing sent
        assert receiver.received == [] and smtp_sink.messages == []
        clock.set(local("2026-12-03 07:00"))
        await s.step(clock.now())

        [msg] = receiver.received
        assert msg["title"] == "Temperature report freezers-daily 2026-12-02"
        assert "2026-12-02 00:00:00 CET to 2026-12-03 00:00:00 CET" in msg["message"]
        files = {a["filename"]: (a["mimetype"], base64.b64decode(a["base64"])) for a in msg["attachments"]}
        assert sorted(files) == ["freezers-daily-2026-12-02.csv", "freezers-daily-2026-12-02.pdf"]
        mime, pdf = files["freezers-daily-2026-12-02.pdf"]
        assert mime == "application/pdf" and pdf.startswith(b"%PDF-")
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        assert "freezer-1/t0/temperature" in text and "freezer-2/t0/temperature" in text and "fridge" not in text
        assert "dashed: limits" in text  # the limit of the rule freezer-warm on the chart
        rows = _csv_rows(files["freezers-daily-2026-12-02.csv"][1])
        summary = {r["series"]: r for r in rows if r["section"] == "summary"}
        assert sorted(summary) == ["freezer-1/t0/temperature", "freezer-2/t0/temperature"]
        assert summary["freezer-1/t0/temperature"]["count"] == "144"
        assert float(summary["freezer-2/t0/temperature"]["min"]) == -20.0
        assert len([r for r in rows if r["section"] == "reading"]) == 2 * 24

        # what was received is what was written, and it verifies against the store and the ledger
        kept = tmp_path / "reports"
        for name, (_, data) in files.items():
            assert (kept / name).read_bytes() == data
            received = tmp_path / f"received-{name}"
            received.write_bytes(data)
            verdict = verify_file(received, store, str(tmp_path / "alerts.db"))
            assert verdict.ok, verdict.problems

        [mail] = smtp_sink.messages
        assert mail["Subject"] == "Temperature report freezers-daily 2026-12-02" and mail["To"] == "boss@example.com"
        attached = {a.get_filename(): a.get_payload(decode=True) for a in mail.iter_attachments()}
        assert attached == {name: data for name, (_, data) in files.items()}

        # exactly once: later steps and a restart send nothing more
        await s.step(local("2026-12-03 12:00"))
        s.close()
        s = scheduler(tmp_path, store, rules({"hook": receiver.url("reports"), "boss": smtp_sink.url()}), clock)
        await s.step(local("2026-12-03 13:00"))
        assert len(receiver.received) == 1 and len(smtp_sink.messages) == 1
        assert [(r["period"], r["state"]) for r in s.runs()] == [("2026-12-02", "sent"), ("2026-12-01", "skipped")]
    finally:
        s.close()


async def test_a_failing_webhook_is_retried_without_mailing_twice_and_its_secret_stays_out(
        tmp_path: Path, store: SqliteStore, receiver: Receiver, smtp_sink: SmtpSink) -> None:
    clock = ManualClock(local("2026-12-03 08:00"))
    dead = f"json://ana:s3cretpass@127.0.0.1:{free_port()}/hook-token-77"
    receiver.fail = 1
    s = scheduler(tmp_path, store, rules({"boss": smtp_sink.url(), "hook": receiver.url(), "dead": dead}), clock)
    try:
        wake = await s.step(clock.now())
        assert len(smtp_sink.messages) == 1 and receiver.received == [] and receiver.requests == 1
        [run] = [r for r in s.runs() if r["period"] == "2026-12-02"]
        assert run["state"] == "sending" and "hook:" in run["error"] and "dead:" in run["error"]
        assert "s3cretpass" not in run["error"] and "hook-token-77" not in run["error"]
        clock.set(wake)
        await s.step(clock.now())
        assert len(receiver.received) == 1 and len(smtp_sink.messages) == 1
        [run] = [r for r in s.runs() if r["period"] == "2026-12-02"]
        assert run["state"] == "sending" and run["done"] == '["boss", "hook"]'
    finally:
        s.close()


def test_hostile_reports_through_vigil_rules_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("""receivers:
  boss: ["mailto://127.0.0.1:25?mode=insecure&to=a@example.com"]
reports:
  - name: ../../etc/cron.d/x
    series: ["freezer-*"]
    every: hourly
    at: "7 am"
    interval: .nan
    formats: [exe]
    receivers: [nobody]
  - {name: ok, series: [a/b/c], every: day, receivers: [nobody]}
""")
    done = subprocess.run([sys.executable, "-m", "vigil.app.cli", "rules", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    out = done.stdout + done.stderr
    for expected in (f"{path}:4: reports[0].name: expected a name of letters",
                     f"{path}:5: reports[0].series: expected a series as device/sensor/metric",
                     f"{path}:6: reports[0].every: expected 'day', 'week' or 'month', got 'hourly'",
                     f"{path}:7: reports[0].at: expected a time of day such as \"07:00\", got '7 am'",
                     f"{path}:8: reports[0].interval: expected a duration",
                     f"{path}:9: reports[0].formats[0]: expected 'pdf' or 'csv', got 'exe'"):
        assert expected in out, out
    path.write_text("""receivers:
  boss: ["mailto://127.0.0.1:25?mode=insecure&to=a@example.com"]
reports:
  - {name: ok, series: [a/b/c], every: day, receivers: [boss, nobody]}
""")
    done = subprocess.run([sys.executable, "-m", "vigil.app.cli", "rules", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "reports[0]: unknown receiver 'nobody' (known: boss)" in done.stdout + done.stderr
