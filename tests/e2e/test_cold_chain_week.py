"""Issue 17's "Done when", through the real chain: a week of a kitchen's cold chain.

A real Mosquitto, `vigil bridge` into SQLite, `vigil alerting` and `vigil dashboard` as processes; a week of
readings (one every 5 minutes, source times over the past seven days in the site's zone) for two freezers and
a fridge, published at once and judged by the engine on source time, with two excursions:

(a) freezer-1 warm for 40 minutes on the third day, on a latched rule notifying the cook on call: it fires,
    clears and stays "cleared" until the cook follows the signed link in her message and acknowledges it
    with a corrective-action note;
(b) fridge-1 warm for 75 minutes on the fifth day, on an escalation policy: the cook on call is told and does
    nothing; the policy's second step tells the manager, who acknowledges by the link in his message (an empty
    POST, as ntfy's action button sends); a note is added afterwards on the dashboard. The excursion happened
    days ago in source time, so Vigil learns of it late: a step's `after` counts from when it learned (the
    cook gets the policy's time to act), so the manager's message comes 2 s after the cook's.

Then `vigil report` for the week (PDF and CSV) as a process, both parsed and checked (excursions with start,
end, peak, duration, who was told, who acknowledged, the notes; the readings every 4 h; min/max per day), and
`vigil report verify` passes, then finds a stored reading changed and a ledger row deleted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.bridge import publish_many
from tests.support.coldchain import ZONE, Excursion, People, Site, Unit, Watch, Week, sql
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration

FREEZER = Unit("freezer-1/t0/temperature", -18.0, (
    Excursion(2, "14:00", (-14.2, -12.5, -11.0, -9.8, -10.4, -11.9, -13.6, -14.8)),))  # back at 14:40
QUIET = Unit("freezer-2/t0/temperature", -20.0)
FRIDGE = Unit("fridge-1/t0/temperature", 4.0, (
    Excursion(4, "09:30", (8.4, 9.1, 9.9, 10.6, 11.2, 10.9, 10.5, 10.1, 9.8, 9.4, 9.0, 8.7, 8.5, 8.3, 8.1)),))
UNITS = (FREEZER, QUIET, FRIDGE)
FZ_KEY = "freezer-warm/freezer-1/t0/temperature"
FR_KEY = "fridge-warm/fridge-1/t0/temperature"
FZ_NOTE = "Stock moved to freezer-2; technician called"
FR_NOTE = "Door left open at delivery; stock probed at 6 C"

RULES = """\
receivers:
  alice: ["{alice}"]
  bob: ["{bob}"]
  manager: ["{manager}"]
schedules:
  cooks:
    rotation: weekly
    handover: "06:00"
    day: mon
    start: 2026-01-05
    people: [alice, bob]
    overrides:
      - {{from: "{on_from}", until: "{on_to}", person: alice}}
    time_zone: Europe/Berlin
escalation_policies:
  fridge-escalation:
    - {{after: 0s, notify: [cooks]}}
    - {{after: 2s, notify: [manager]}}
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
delivery: {{retry_initial: 200ms, retry_max: 1s}}
rules:
  - name: freezer-warm
    match: {{device: "freezer-*", metric: temperature}}
    above: -15
    for: 10m
    latch: true
    severity: critical
    notify: cooks
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C"
  - name: fridge-warm
    match: {{device: "fridge-*", metric: temperature}}
    above: 8
    for: 10m
    latch: true
    severity: warning
    notify: fridge-escalation
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C"
"""


def rules(people: People) -> str:
    """The rules file; alice is on call for the test's day (an override over the rotation, so it is certain)."""
    now, day = dt.datetime.now(ZONE), dt.timedelta(days=1)
    return RULES.format(alice=people.url("alice"), bob=people.url("bob"), manager=people.url("manager"),
                        on_from=f"{now - day:%Y-%m-%d %H:%M}", on_to=f"{now + day:%Y-%m-%d %H:%M}")


def local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, ZONE)


@pytest.fixture(params=["sqlite", "influxdb"])
def site(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Site, People, Watch]]:
    influx = (request.getfixturevalue("influxd"), request.getfixturevalue("influx_db")) \
        if request.param == "influxdb" else None
    people = People()
    watch = Watch(mosquitto)
    s = Site(tmp_path, mosquitto, rules(people), influx)
    try:
        s.start()
        yield s, people, watch
    finally:
        s.stop()
        watch.close()
        people.close()


def test_a_week_two_excursions_one_acknowledged_by_link_one_escalated_then_the_report_and_its_verification(
        site: tuple[Site, People, Watch], mosquitto: Mosquitto, tmp_path: Path) -> None:
    s, people, watch = site
    week = Week(UNITS)
    messages = week.messages()
    publish_many(mosquitto, messages)
    assert wait_until(lambda: s.stored() == len(messages), 90), (s.stored(), len(messages), s.logs())

    fz_start = FREEZER.excursions[0].begins(week.start_dt)
    fr_start = FRIDGE.excursions[0].begins(week.start_dt)

    # (a) the freezer's excursion fired and cleared; latched, it waits for a person
    assert wait_until(lambda: watch.state(FZ_KEY) == "cleared", 60), (watch.alert(FZ_KEY), s.logs())
    fz = watch.alert(FZ_KEY)
    assert (fz["since"], fz["ended"], fz["peak"], fz["latched"]) == (fz_start, fz_start + 2400, -9.8, True), fz
    assert fz.get("acknowledged_by") in (None, ""), fz

    # (b) the fridge's: the cook on call told at once, the manager by the policy's second step (its `after`
    # counts from when Vigil learned of the excursion, late: 2 s after that)
    assert wait_until(lambda: bool(people.links("manager", "fridge-1", s.base)), 60), (people.got, s.logs())
    assert wait_until(lambda: watch.state(FR_KEY) == "cleared", 30), (watch.alert(FR_KEY), s.logs())
    fr = watch.alert(FR_KEY)
    assert (fr["state"], fr["since"], fr["ended"], fr["peak"]) == ("cleared", fr_start, fr_start + 4500, 11.2), fr
    assert people.links("alice", "fridge-1", s.base), people.got.get("alice")
    assert [m for m in people.messages("manager", "fridge-1") if m.startswith("[ESCALATED warning] fridge-warm ")
            and "escalated to you" in m], people.got.get("manager")
    assert not people.messages("manager", "freezer-1"), "the freezer's rule does not escalate"
    assert not people.messages("bob"), "bob is not on call"
    assert not people.messages("alice", "freezer-2") and not people.messages("manager", "freezer-2")

    # (a) still cleared, seconds later and two simulated days after its end: nobody acknowledged it; the dashboard
    # shows both as cleared, not acknowledged, with peak and duration
    assert watch.state(FZ_KEY) == "cleared", watch.alert(FZ_KEY)
    assert wait_until(lambda: shown(s) == {FZ_KEY: ("cleared", -9.8, 2400.0), FR_KEY: ("cleared", 11.2, 4500.0)}, 60), \
        (shown(s), s.logs())
    link = people.links("alice", "freezer-1", s.base)[0]
    page = httpx.get(link, timeout=15)
    assert page.status_code == 200 and "freezer-1" in page.text, (page.status_code, page.text[:1000])
    assert "cleared, not acknowledged" in page.text and "As alice." in page.text, page.text[:3000]
    done = httpx.post(link, data={"note": FZ_NOTE}, timeout=15)
    assert done.status_code in (200, 303), (done.status_code, done.text[:1000])
    assert wait_until(lambda: watch.state(FZ_KEY) == "resolved", 30), (watch.alert(FZ_KEY), s.logs())
    fz = watch.alert(FZ_KEY)
    assert fz["acknowledged_by"] == "alice", fz
    assert [(n["by"], n["text"]) for n in fz.get("notes", [])] == [("alice", FZ_NOTE)], fz
    over = "It is over: back in range at {} after {}, peak {}; acknowledged by {}."
    told_over = over.format(f"{hm(fz_start + 2400)}:00 {local(fz_start).tzname()}", "40m", "-9.8", "alice")
    assert wait_until(lambda: bool(people.messages("alice", told_over)), 30), people.got.get("alice")
    again = httpx.post(link, data={"note": "again"}, timeout=15)
    assert again.status_code == 410, (again.status_code, again.text[:500])

    # (b) the manager acknowledges from his message; then a note on the dashboard
    link = people.links("manager", "fridge-1", s.base)[0]
    done = httpx.post(link, timeout=15)
    assert done.status_code in (200, 303), (done.status_code, done.text[:1000])
    assert wait_until(lambda: watch.state(FR_KEY) == "resolved", 30), (watch.alert(FR_KEY), s.logs())
    assert watch.alert(FR_KEY)["acknowledged_by"] == "manager", watch.alert(FR_KEY)
    told_over = over.format(f"{hm(fr_start + 4500)}:00 {local(fr_start).tzname()}", "1h15m", "11.2", "manager")
    both = ("manager", "alice")
    assert wait_until(lambda: all(people.messages(p, told_over) for p in both), 30), people.got
    added = s.api("POST", "/api/v1/alerts/fridge-warm/fridge-1/t0/temperature/notes", json={"text": FR_NOTE})
    assert added.status_code in (200, 201, 202), (added.status_code, added.text[:500])
    assert wait_until(lambda: FR_NOTE in [n["text"] for n in watch.alert(FR_KEY).get("notes", [])], 30), \
        watch.alert(FR_KEY)

    # the report of the week, PDF and CSV, by `vigil report` as a process
    pdf, table = tmp_path / "week.pdf", tmp_path / "week.csv"
    made = s.vigil("report", "-c", str(s.config), *[a for u in UNITS for a in ("--series", u.series)],
                   "--from", f"{week.start_dt:%Y-%m-%dT%H:%M}", "--to", f"{local(week.end):%Y-%m-%dT%H:%M}",
                   "--every", "4h",
                   "--pdf", str(pdf), "--csv", str(table))
    assert made.returncode == 0, (made.stdout, made.stderr)
    s.stop()  # what follows reads only the files

    check_csv(table.read_text("utf-8"), week, fz_start, fr_start)
    check_pdf(pdf, week, fz_start, fr_start)

    # verification: intact; then a stored reading changed (the peak lowered), put back; a figure changed in the
    # CSV itself; then a ledger row deleted (the freezer's acknowledgement)
    for report in (pdf, table):
        ok = s.vigil("report", "verify", str(report), "-c", str(s.config))
        assert ok.returncode == 0 and f"{report}: ok" in ok.stdout, (report.name, ok.stdout, ok.stderr)
    peak_at = fz_start + 3 * 300
    assert s.reading("freezer-1", peak_at) == [-9.8]
    s.change_reading("freezer-1", peak_at, -18.0)
    assert s.reading("freezer-1", peak_at) == [-18.0]
    changed = s.vigil("report", "verify", str(pdf), "-c", str(s.config))
    said = changed.stdout + changed.stderr
    assert changed.returncode == 1, said
    assert f"freezer-1/t0/temperature {local(fz_start).date().isoformat()}: " in said and "differs" in said, said
    assert "fridge-1" not in said and "ledger" not in said.split("\n", 1)[1], said
    s.change_reading("freezer-1", peak_at, -9.8)
    assert s.vigil("report", "verify", str(pdf), "-c", str(s.config)).returncode == 0

    # a figure changed in the CSV itself (the peak made to look better)
    forged = tmp_path / "forged.csv"
    text = table.read_text("utf-8")
    assert text.count(",-9.8,2400,") == 1
    forged.write_text(text.replace(",-9.8,2400,", ",-14.9,2400,"), "utf-8")
    edited = s.vigil("report", "verify", str(forged), "-c", str(s.config))
    said = edited.stdout + edited.stderr
    assert edited.returncode == 1 and "the CSV's data lines were changed" in said, said

    ((seq,),) = sql(s.state, "SELECT seq FROM ledger WHERE kind = 'acked' AND key = ?", FZ_KEY)
    sql(s.state, "DELETE FROM ledger WHERE seq = ?", seq)
    for report in (pdf, table):
        deleted = s.vigil("report", "verify", str(report), "-c", str(s.config))
        said = deleted.stdout + deleted.stderr
        assert deleted.returncode == 1 and f"ledger record {seq} missing (deleted)" in said, said


def shown(s: Site) -> dict[str, tuple[str, float, float]]:
    """The dashboard's current alerts: state, peak and duration."""
    current = s.api("GET", "/api/v1/alerts").json()["current"]
    return {f"{a['rule']}/{a['series']}": (a["state"], a.get("peak"), a.get("duration")) for a in current}


def iso(ts: float) -> str:
    return local(ts).isoformat(timespec="seconds")


def csv_rows(text: str) -> list[dict[str, str]]:
    """The report CSV's rows, after its ``#`` manifest lines."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def check_csv(text: str, week: Week, fz_start: float, fr_start: float) -> None:
    rows = csv_rows(text)
    assert text.startswith("#") and "# manifest: " in text, text[:500]

    def of(section: str, unit: Unit) -> list[dict[str, str]]:
        return [r for r in rows if r["section"] == section and r["series"] == unit.series]

    for unit in UNITS:
        # the reading at every 4 h mark (00:00, 04:00, ... site time): 6 a day, each the one taken then
        marks = week.at_marks(unit, 4 * 3600)
        assert len(marks) == 42
        got = {r["time"]: (r["reading_time"], float(r["value"])) for r in of("reading", unit)}
        assert got == {iso(ts): (iso(ts), v) for ts, v in marks.items()}, unit.series
        # min and max of each site day, of all 288 readings
        days = {r["text"]: (int(r["count"]), float(r["min"]), float(r["max"])) for r in of("day", unit)}
        assert days == {d.isoformat(): (288, lo, hi) for d, (lo, hi) in week.min_max(unit).items()}, unit.series

    assert of("excursion", QUIET) == [] and of("told", QUIET) == []
    # alice heard of each when it fired (or, learned late, already cleared); the manager of the fridge's only,
    # by escalation
    for unit, start, length, peak, told, by, note in (
            (FREEZER, fz_start, 2400, -9.8, {"alice": set()}, "alice", FZ_NOTE),
            (FRIDGE, fr_start, 4500, 11.2, {"alice": set(), "manager": {"escalation"}}, "manager", FR_NOTE)):
        (x,) = of("excursion", unit)
        assert (x["time"], x["until"], float(x["peak"]), x["duration_s"]) == \
            (iso(start), iso(start + length), peak, str(length)), x
        how: dict[str, set[str]] = {}
        for r in of("told", unit):
            how.setdefault(r["who"], set()).add(r["how"])
        assert how.keys() == told.keys() and how["alice"] & {"firing", "cleared"}, (unit.series, how)
        assert all(kinds <= how[who] for who, kinds in told.items()), (unit.series, how)
        assert [(r["who"], r["how"]) for r in of("ack", unit)] == [(by, "link")], unit.series
        assert [(r["who"], r["text"]) for r in of("note", unit)] == [(by, note)], unit.series
        assert {r["until"] for r in of("told", unit) + of("ack", unit) + of("note", unit)} == {iso(start)}


def hm(ts: float) -> str:
    return local(ts).strftime("%Y-%m-%d %H:%M")


NUM = r"(-?\d+(?:\.\d+)?)"
DAY_ROW = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}}) (\d[\d,]*) {NUM} {NUM} {NUM}")
MARK = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}) {NUM}(?= |$)")


def check_pdf(path: Path, week: Week, fz_start: float, fr_start: float) -> None:
    """The PDF's text (pypdf), whitespace made single spaces: each unit's pages with its excursions (start, end,
    duration, peak, who was told, who acknowledged, the notes), its days (readings, min, max) and its readings."""
    from pypdf import PdfReader

    pages = [" ".join((page.extract_text() or "").split()) for page in PdfReader(path).pages]
    per_unit: dict[str, str] = {}
    for unit in UNITS:
        mine = [p for p in pages if f"Temperature log: {unit.series} " in p]
        assert mine, f"no page of {unit.series}"
        per_unit[unit.series] = " ".join(mine)
    for unit, rule, start, length, peak, told, by, note in (
            (FREEZER, "freezer-warm", fz_start, 2400, "-9.8", "alice", "alice", FZ_NOTE),
            (FRIDGE, "fridge-warm", fr_start, 4500, "11.2", "alice, manager", "manager", FR_NOTE)):
        text = per_unit[unit.series]
        lasted = f"{length // 3600}h {length % 3600 // 60:02d}m"
        row = f"{hm(start)} {hm(start + length)} {lasted} {peak} °C {rule} told: {told} acknowledged: {by} "
        assert row in text, (row, text[:3000])
        assert re.search(re.escape(row) + r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CES?T via link", text), text[:3000]
        assert re.search(rf"note by {by} \d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}: {re.escape(note)}", text), text[:3000]
        assert "1 excursion" in text, text[:1000]
    assert "0 excursions" in per_unit[QUIET.series] and "Excursions" not in per_unit[QUIET.series]
    for unit in UNITS:
        text = per_unit[unit.series]
        days = {d: (int(n.replace(",", "")), float(lo), float(hi)) for d, n, lo, hi, _ in DAY_ROW.findall(text)}
        assert days == {d.isoformat(): (288, lo, hi) for d, (lo, hi) in week.min_max(unit).items()}, unit.series
        marks = {t: float(v) for t, v in MARK.findall(text)}
        assert marks == {hm(ts): v for ts, v in week.at_marks(unit, 4 * 3600).items()}, unit.series
