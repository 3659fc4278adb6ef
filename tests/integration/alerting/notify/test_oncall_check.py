"""``vigil rules check`` as a real process on schedules and escalation policies: good ones pass, hostile and
wrong ones are refused with the file, the line and a reason, and nothing crashes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.bridge import VIGIL

RECEIVERS = """\
receivers:
  anna: "json://127.0.0.1:9/anna"
  ben: "json://127.0.0.1:9/ben"
  manager: "json://127.0.0.1:9/manager"
"""

RULE = """\
rules:
  - name: freezer-warm
    match: {metric: temperature}
    above: -15
    notify: [%s]
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "rules", "check", str(path)], capture_output=True, text=True, timeout=60)


def test_a_good_schedule_and_policy_pass(tmp_path: Path) -> None:
    f = tmp_path / "kitchen.yaml"
    f.write_text(RECEIVERS + """\
schedules:
  cooks:
    rotation: weekly
    handover: 07:00
    day: monday
    start: 2026-01-05
    people: [anna, ben]
    overrides:
      - {from: 2026-12-24, until: 2026-12-27, person: manager}
    time_zone: Europe/Berlin
escalation_policies:
  kitchen:
    - notify: cooks
    - {after: 10m, notify: [manager]}
    - {after: 30m, notify: [anna, ben, manager]}
routes:
  - match: {severity: critical}
    receivers: [cooks]
""" + RULE % "kitchen")
    done = check(f)
    assert done.returncode == 0, done.stderr


def test_hostile_and_wrong_values_are_refused_with_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(RECEIVERS + """\
schedules:
  nights:
    rotation: weekly
    handover: .nan
    start: "2026-02-30"
    people: anna
    overrides:
      - {from: 1e308, until: [1], person: 123}
    time_zone: "../../etc/passwd"
""")
    (folder / "b.yaml").write_text(RECEIVERS + """\
schedules:
  empty:
    rotation: daily
    handover: "07:00"
    start: 2026-01-05
    people: []
""")
    (folder / "c.yaml").write_text(RECEIVERS + """\
schedules:
  cooks:
    rotation: daily
    handover: "07:00"
    start: 2026-01-05
    people: [anna, ghost]
""")
    (folder / "d.yaml").write_text(RECEIVERS + """\
escalation_policies:
  p:
    - notify: [anna]
    - after: 10m
      notify: [q]
  q:
    - notify: [p]
""")
    (folder / "e.yaml").write_text(RECEIVERS + """\
schedules:
  cooks:
    rotation: daily
    handover: "07:00"
    start: 2026-01-05
    people: [anna]
    overrides:
      - {from: "2026-02-01", until: "2026-02-05", person: ben}
      - {from: "2026-02-04 12:00", until: "2026-02-06", person: manager}
""")
    (folder / "f.yaml").write_text(RECEIVERS + "escalation_policies:\n  huge:\n    - notify: ["
                                   + ", ".join(["anna"] * 5000) + "]\n")
    done = check(folder)
    assert done.returncode == 3, done.stdout + done.stderr
    err = done.stderr
    assert f"{folder}/a.yaml:8: schedules.nights.handover: expected a time of day" in err
    assert f"{folder}/a.yaml:9: schedules.nights.start: expected a date" in err
    assert f"{folder}/a.yaml:10: schedules.nights.people: expected a list" in err
    assert f"{folder}/a.yaml:12: schedules.nights.overrides[0].person: expected a string" in err
    assert f"{folder}/a.yaml:13: schedules.nights.time_zone: unknown IANA time zone" in err
    assert f"{folder}/b.yaml:6: schedules.empty: people: a schedule needs at least one person" in err
    assert f"{folder}/c.yaml:10: schedules.cooks.people[1]: unknown receiver 'ghost'" in err
    assert f"{folder}/d.yaml:9: escalation_policies.p[1].notify: escalation policy cycle p -> q -> p" in err
    assert f"{folder}/e.yaml:6: schedules.cooks: overrides[0] and overrides[1] overlap" in err
    assert f"{folder}/f.yaml:7: escalation_policies.huge[0].notify: List should have at most 1000 items" in err
    assert "Traceback" not in err


def test_a_rule_naming_an_unknown_policy_or_schedule_is_refused_at_its_line(tmp_path: Path) -> None:
    f = tmp_path / "kitchen.yaml"
    f.write_text(RECEIVERS + RULE % "kitchen-policy")
    done = check(f)
    assert done.returncode == 3
    assert (f"{f}:6: rule 'freezer-warm': notify: unknown receiver 'kitchen-policy' (known: anna, ben, manager)"
            in done.stderr)
