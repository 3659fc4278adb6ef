"""Reports on a PostgreSQL state (a real one: tests/support/postgres.py): make_report over the shared ledger, its
seals, verify_file and tampering; the scheduler's unit tests again on a ``postgresql://`` URL, two schedulers
on one database sending a due report once, a stopped scheduler's claim let go at once and a dead one's taken
when it runs out; ``vigil report`` and ``vigil report verify`` as real processes with
``--state postgresql://...``; the dashboard's reports; an unreachable database named without its password."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting import ledger
from alerting.report import ReportRequest, StateUnavailable, make_report, verify_file, write_csv, write_pdf
from alerting.report.schedule import CLAIM
from dashboard.ports import ReportRefused
from tests.support.reports import SERIES, ZONE, day_bounds, excursion_rows, fill, site, write_ledger
from tests.unit.alerting.report.test_schedule import (
    DAILY,
    Crash,
    Harness,
    at,
    test_a_failing_receiver_is_retried_with_backoff_and_the_others_are_not_repeated,
    test_a_period_missed_while_down_is_sent_on_start_but_only_the_last,
    test_a_receiver_failing_until_the_next_period_is_given_up,
    test_a_scheduler_stopped_mid_run_lets_its_claim_go,
    test_a_scheduler_whose_partition_was_handed_over_lets_its_claim_go,
    test_a_stopped_scheduler_leaves_a_claim_another_took_since,
    test_rules_reloaded_take_effect_and_a_removed_report_stops,
    test_sends_the_day_just_finished_once_at_the_send_time,
    test_two_schedulers_on_one_state_make_and_send_a_due_report_once,
    test_weekly_and_monthly_across_dst_and_month_ends,
)
from vigil.app.dashboard_wiring import EngineReports
from vigil.core.sqldb import connect, redact
from vigil.core.stores import MemoryStore, open_store

pytestmark = pytest.mark.integration

__all__ = [  # the scheduler's unit tests this module runs again, on PostgreSQL
    "test_a_failing_receiver_is_retried_with_backoff_and_the_others_are_not_repeated",
    "test_a_period_missed_while_down_is_sent_on_start_but_only_the_last",
    "test_a_receiver_failing_until_the_next_period_is_given_up",
    "test_a_scheduler_stopped_mid_run_lets_its_claim_go",
    "test_a_scheduler_whose_partition_was_handed_over_lets_its_claim_go",
    "test_a_stopped_scheduler_leaves_a_claim_another_took_since",
    "test_rules_reloaded_take_effect_and_a_removed_report_stops",
    "test_sends_the_day_just_finished_once_at_the_send_time",
    "test_two_schedulers_on_one_state_make_and_send_a_due_report_once",
    "test_weekly_and_monthly_across_dst_and_month_ends",
]

UNREACHABLE = "postgresql://vigil:s3cret-pw@127.0.0.1:1/vigil"


@pytest.fixture(autouse=True)
def on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The unit tests' Harness on this test's fresh database."""
    monkeypatch.setattr(Harness, "url", pg_url)
    yield


def _sql(url: str, statement: str) -> None:
    """One statement on the database, as someone with its password might run it."""
    conn = connect(url)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def test_a_report_reads_the_excursion_seals_its_days_and_verifies(pg_url: str, tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=2 * 1440)
    start, _ = day_bounds()
    write_ledger(pg_url, excursion_rows(start + 3600))
    request = ReportRequest([SERIES], start, start + 2 * 86400, zone=ZONE)
    report = make_report(store, pg_url, request, now=start + 2 * 86400 + 60)
    [unit] = report.units
    [x] = unit.excursions
    assert (x.since, x.peak, x.ended, [a["by"] for a in x.acks], [t["receiver"] for t in x.told]) == (
        start + 3600, -8.0, start + 3600 + 2400, ["alice"], ["kitchen-phone"])
    conn = connect(pg_url)
    try:
        seals = ledger.entries(conn, kinds=["seal"])
        assert [(e.key, e.body["start"], e.body["count"]) for e in seals] == [
            (SERIES, start, 1440), (SERIES, start + 86400, 1440)]
        assert report.manifest.seals == [e.seq for e in seals] and report.manifest.head_seq == 9
        assert ledger.verify(conn) == []
    finally:
        conn.close()
    pdf, csv = tmp_path / "log.pdf", tmp_path / "log.csv"
    write_pdf(report, pdf)
    write_csv(report, csv)
    for path in (pdf, csv):
        verdict = verify_file(path, store, pg_url)
        assert verdict.ok, verdict.problems
        assert verdict.checked.startswith("ledger records 1-9, 2 seals of 1 series (2,880 readings)")
    # a second report over the same days reuses the seals: one report row more, no seal
    again = make_report(store, pg_url, request, now=start + 3 * 86400)
    assert again.manifest.seals == report.manifest.seals and again.manifest.head_seq == 10
    # a changed ledger row is found
    _sql(pg_url, "UPDATE ledger SET body = replace(body, 'alice', 'mallory') WHERE kind = 'acked'")
    verdict = verify_file(csv, store, pg_url)
    assert not verdict.ok and any("was changed after it was written" in p for p in verdict.problems)


def test_verify_against_a_database_without_a_ledger_says_so(pg_url: str, tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=1440)
    start, end = day_bounds()
    report = make_report(store, pg_url, ReportRequest([SERIES], start, end, zone=ZONE), now=end + 60)
    csv = tmp_path / "day.csv"
    write_csv(report, csv)
    _sql(pg_url, "DROP TABLE ledger")
    verdict = verify_file(csv, store, pg_url)
    assert not verdict.ok and verdict.problems[0].startswith(f"no ledger in {redact(pg_url)}: the alert state database")


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=1440)
    start, end = day_bounds()
    with pytest.raises(StateUnavailable) as caught:
        make_report(store, UNREACHABLE, ReportRequest([SERIES], start, end, zone=ZONE), now=end + 60)
    said = str(caught.value)
    assert said.startswith("cannot use the alert state database postgresql://vigil:***@127.0.0.1:1/vigil: ")
    assert "s3cret" not in said and caught.value.target == "postgresql://vigil:***@127.0.0.1:1/vigil"
    reports = EngineReports(UNREACHABLE, tmp_path / "rules.yaml", tmp_path)
    with pytest.raises(ReportRefused) as refused:
        reports.make(store, [SERIES], start, end, 4 * 3600.0, ZONE, "csv")
    assert "postgresql://vigil:***@127.0.0.1:1/vigil" in str(refused.value) and "s3cret" not in str(refused.value)


def test_the_dashboards_report_is_sealed_in_the_database(pg_url: str, tmp_path: Path) -> None:
    store = MemoryStore()
    fill(store, minutes=1440)
    start, end = day_bounds()
    made = EngineReports(pg_url, tmp_path / "rules.yaml", tmp_path).make(store, [SERIES], start, end, 4 * 3600.0,
                                                                        ZONE, "csv")
    assert made.name.endswith(".csv")
    conn = connect(pg_url)
    try:
        assert [e.kind for e in ledger.entries(conn)] == ["seal", "report"]
    finally:
        conn.close()


async def test_a_dead_schedulers_claim_is_taken_when_it_runs_out(tmp_path: Path) -> None:
    """On a shared database a claim is not taken over at once (its holder may be sending now): once it ran out,
    the receiver in flight is sent again and the others once, the files not made again."""
    h = Harness(tmp_path, [{**DAILY, "receivers": ["a", "b", "c"]}], receivers=("a", "b", "c"))
    try:
        h.crash_on = "b"
        with pytest.raises(Crash):
            await h.step("2026-12-02 12:00")
        assert [s[0] for s in h.sent] == ["a"]
        h.scheduler = h.new()  # the dead one's connection stays open: a process that hangs, or whose host went
        await h.step("2026-12-02 12:01")
        assert [s[0] for s in h.sent] == ["a"]  # still claimed
        h.clock.set(at("2026-12-02 12:00") + CLAIM)
        await h.step()
        assert [s[0] for s in h.sent] == ["a", "b", "c"] and len(h.jobs) == 1
        await h.step("2026-12-02 13:00")
        assert len(h.sent) == 3
    finally:
        h.close()


def vigil_report(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil.app.cli", "report", *argv], capture_output=True, text=True,
                          timeout=120)


def test_vigil_report_and_verify_with_a_postgresql_state(pg_url: str, tmp_path: Path) -> None:
    config = site(tmp_path, pg_url)
    pdf, csv = tmp_path / "log.pdf", tmp_path / "log.csv"
    done = vigil_report("-c", str(config), "--state", pg_url, "--series", "freezer-*/t0/temperature",
                        "--from", "2026-11-03", "--to", "2026-11-04", "--pdf", str(pdf), "--csv", str(csv))
    assert done.returncode == 0, done.stderr
    assert "2 series, 5,760 readings, 1 excursions; 4 seals, ledger record 11" in done.stdout, done.stdout
    assert pdf.stat().st_size > 1000 and csv.read_text().count("\n") > 20
    assert not (tmp_path / "data" / "alerts.db").exists()  # the ledger is the database
    for path in (pdf, csv):
        ok = vigil_report("-c", str(config), "--state", pg_url, "verify", str(path))
        assert ok.returncode == 0 and ok.stdout.startswith(f"{path}: ok (ledger records 1-11, 4 seals"), ok
    conn = connect(pg_url)
    try:
        conn.execute("DELETE FROM ledger WHERE seq = 3")
    finally:
        conn.close()
    bad = vigil_report("-c", str(config), "--state", pg_url, "verify", str(csv))
    assert bad.returncode == 1 and "ledger record 3 missing (deleted)" in bad.stdout, bad.stdout


def test_vigil_report_with_an_unreachable_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {data}\ndashboard:\n  timezone: Europe/Berlin\nalerting:\n  state: {UNREACHABLE}\n")
    with open_store(f"sqlite:///{data}/vigil.db", retention=10 * 365 * 86400.0) as store:
        fill(store, minutes=1440)
    for argv in (["--series", SERIES, "--day", "2026-11-03", "--csv", str(tmp_path / "out.csv")],
                 ["--state", UNREACHABLE, "--series", SERIES, "--day", "2026-11-03", "--pdf", str(tmp_path / "o.pdf")]):
        done = vigil_report("-c", str(config), *argv)
        assert done.returncode == 3, done
        assert "vigil report: cannot use the alert state database postgresql://vigil:***@127.0.0.1:1/vigil: " \
            in done.stderr, done.stderr
        assert "s3cret" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    assert not (tmp_path / "out.csv").exists()
