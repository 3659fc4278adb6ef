"""The ``reports:`` key of a rules file: what it accepts, and hostile values refused with file and line."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting.rules import RulesError, load_rules_text

HEAD = 'receivers:\n  boss: ["mailto://user:pw@example.com"]\n  cook: ["json://127.0.0.1:8080/r"]\nreports:\n'


def problems(body: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        load_rules_text(HEAD + body, "r.yaml")
    return [str(i) for i in info.value.issues]


def test_the_example_of_the_docs_loads() -> None:
    rules, warnings = load_rules_text(HEAD + """\
  - name: kitchen-weekly
    series: ["freezer-*/t0/temperature", fridge-1/t0/temperature]
    every: week
    at: 07:00
    interval: 4h
    formats: [pdf, csv, pdf]
    receivers: [boss, cook, boss]
""", "r.yaml")
    [r] = rules.notify.reports
    assert (r.name, r.every, r.at, r.interval) == ("kitchen-weekly", "week", dt.time(7, 0), 4 * 3600.0)
    assert r.formats == ["pdf", "csv"] and r.receivers == ["boss", "cook"]  # repeats dropped
    assert r.time_zone is None and warnings == []


def test_defaults() -> None:
    rules, _ = load_rules_text(HEAD + "  - {name: d, series: [a/b/c], every: day, receivers: [cook]}\n")
    [r] = rules.notify.reports
    assert (r.at, r.interval, r.formats) == (dt.time(7, 0), 4 * 3600.0, ["pdf", "csv"])


@pytest.mark.parametrize(("item", "expected"), [
    ("{name: k, series: [a/b/c], every: fortnight, receivers: [cook]}",
     "r.yaml:5: reports[0].every: expected 'day', 'week' or 'month', got 'fortnight'"),
    ("{name: k, series: [a/b/c], every: day, at: '24:30', receivers: [cook]}",
     "r.yaml:5: reports[0].at: expected a time of day such as \"07:00\", got '24:30'"),
    ("{name: k, series: [a/b/c], every: day, at: 99999, receivers: [cook]}",
     "r.yaml:5: reports[0].at: expected a time of day such as \"07:00\", got 99999"),
    ("{name: k, series: [a/b/c], every: day, at: [7], receivers: [cook]}",
     "r.yaml:5: reports[0].at: expected a time of day such as \"07:00\", got [7]"),
    ("{name: ../../etc/passwd, series: [a/b/c], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].name: expected a name of letters, digits"),
    ("{name: " + "x" * 65 + ", series: [a/b/c], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].name: expected a name of letters, digits"),
    ("{name: 7, series: [a/b/c], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].name: expected a string"),
    ("{name: k, series: ['freezer-*'], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].series: expected a series as device/sensor/metric"),
    ("{name: k, series: ['a//c'], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].series: expected a series as device/sensor/metric"),
    ("{name: k, series: [\"a/b\\tx/c\"], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].series: expected a series as device/sensor/metric"),
    ("{name: k, series: [], every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].series: List should have at least 1 item"),
    ("{name: k, series: a/b/c, every: day, receivers: [cook]}",
     "r.yaml:5: reports[0].series: expected a list"),
    ("{name: k, series: [a/b/c], every: day, interval: .nan, receivers: [cook]}",
     "r.yaml:5: reports[0].interval: expected a duration"),
    ("{name: k, series: [a/b/c], every: day, interval: 1s, receivers: [cook]}",
     "r.yaml:5: reports[0].interval: expected an interval from 1m to 1d, such as 4h"),
    ("{name: k, series: [a/b/c], every: day, formats: [docx], receivers: [cook]}",
     "r.yaml:5: reports[0].formats[0]: expected 'pdf' or 'csv', got 'docx'"),
    ("{name: k, series: [a/b/c], every: day, formats: [], receivers: [cook]}",
     "r.yaml:5: reports[0].formats: List should have at least 1 item"),
    ("{name: k, series: [a/b/c], every: day, receivers: []}",
     "r.yaml:5: reports[0].receivers: List should have at least 1 item"),
    ("{name: k, series: [a/b/c], every: day, receivers: [cook], time_zone: Mars/Olympus}",
     "r.yaml:5: reports[0].time_zone: unknown IANA time zone 'Mars/Olympus'"),
    ("{name: k, series: [a/b/c], every: day, receivers: [cook], cc: [boss]}",
     "r.yaml:5: reports[0].cc: unknown key"),
    ("{name: k, series: [a/b/c], every: day, receivers: [nobody]}",
     "reports[0]: unknown receiver 'nobody' (known: boss, cook)"),
])
def test_hostile_items_are_refused_with_file_line_and_key(item: str, expected: str) -> None:
    found = problems("  - " + item + "\n")
    assert any(expected in p for p in found), found


def test_more_than_200_globs_and_a_huge_glob_are_refused() -> None:
    many = ", ".join(f"d{i}/t0/temperature" for i in range(201))
    assert any("reports[0].series: List should have at most 200 items" in p
               for p in problems(f"  - {{name: k, series: [{many}], every: day, receivers: [cook]}}\n"))
    huge = "d" * 5000 + "/t0/temperature"
    [p] = problems(f"  - {{name: k, series: [{huge}], every: day, receivers: [cook]}}\n")
    assert "expected a series as device/sensor/metric" in p and len(p) < 400


def test_two_reports_with_one_name_are_refused() -> None:
    found = problems("  - {name: k, series: [a/b/c], every: day, receivers: [cook]}\n"
                     "  - {name: k, series: [a/b/c], every: week, receivers: [cook]}\n")
    assert any("two reports are named 'k'" in p for p in found), found


def test_reports_not_a_list_is_refused() -> None:
    [p] = problems("  name: k\n")
    assert p.startswith("r.yaml:4: reports: expected a list")
