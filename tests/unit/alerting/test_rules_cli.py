"""``vigil rules check`` and ``vigil rules test`` as a user runs them: output lines and exit codes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vigil.app.cli import main

DATA = Path(__file__).parent / "data"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rules", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def test_check_reports_every_error_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "bad.yaml", """
    rules:
      - name: wrong-type
        above: warm
      - name: unknown-key
        abvoe: 3
      - name: bad-duration
        above: 3
        for: 5 minutes
      - name: bad-template
        above: 3
        message: "{{ device "
      - name: sandbox
        above: 3
        message: "{{ ''.__class__.__mro__ }}"
      - name: never-clears
        above: 3
        clear_below: 5
    """)
    code, _out, err = run(capsys, "check", str(f))
    assert code == 3
    lines = err.splitlines()
    assert f"error: {f}:3: rule 'wrong-type': above: expected a number" in lines[0]
    assert f"error: {f}:5: rule 'unknown-key': abvoe: unknown key; did you mean 'above'?" in err
    assert f"error: {f}:8: rule 'bad-duration': for: expected a duration such as 30s, 5m, 1h30m or 7d, " \
        "got '5 minutes'" in err
    assert f"error: {f}:11: rule 'bad-template': message: template syntax error:" in err
    assert f"error: {f}:14: rule 'sandbox': message: the template sandbox refused it: access to attribute " \
        "'__class__' of 'str' object is unsafe." in err
    assert f"error: {f}:15: rule 'never-clears': clear_below (5.0) must be at or below above (3.0)" in err
    assert "6 error(s)" in err


def test_check_warns_about_rules_that_never_match_or_fire(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "warn.yaml", """
    rules:
      - name: slash-glob
        match: {device: "kitchen/*"}
        above: 3
      - name: contradiction
        all:
          - {above: 10}
          - {below: 5}
      - name: typo-metric
        match: {metric: temprature}
        above: 3
    """)
    code, out, err = run(capsys, "check", str(f))
    assert code == 0
    assert f"warning: {f}:3: rule 'slash-glob': match.device: the glob 'kitchen/*' can match nothing" in err
    assert f"warning: {f}:5: rule 'contradiction': this rule can never fire: all: needs a value above 10.0 " \
        "and below 5.0 at once" in err
    assert f"warning: {f}:10: rule 'typo-metric': match.metric: 'temprature' matches none of the known" in err
    assert f"warning: {f}:2: rule 'slash-glob': no notify: and no routes: its alerts are published on MQTT, " \
        "but nobody is told" in err
    assert "3 rules, 0 receivers, 6 warnings" in out
    assert run(capsys, "check", "--strict", str(f))[0] == 1


def test_check_warns_about_declared_series_that_are_never_watched(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "series.yaml", """
    receivers: {ops: ["json://127.0.0.1:9/x"]}
    rules:
      - name: silent
        match: {device: "freezer-*"}
        nodata: 10m
        notify: ops
        series: [freezer-1/t0/temperature, oven/t0/temperature]
      - name: hot
        above: 30
        notify: ops
        series: [freezer-1/t0/temperature]
    """)
    code, out, err = run(capsys, "check", str(f))
    assert code == 0
    assert f"warning: {f}:7: rule 'silent': series: 'oven/t0/temperature' is not selected by match" in err
    assert f"warning: {f}:11: rule 'hot': series: series: declares series for nodata; this rule has no nodata" \
        in err
    assert "2 rules, 1 receivers, 2 warnings" in out


def test_check_folder_merges_files_and_checks_receivers(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.yaml", """
    receivers:
      ops: ["json://127.0.0.1:9/x"]
    rules:
      - {name: one, above: 1, notify: ops}
    """)
    write(tmp_path, "b.yaml", """
    rules:
      - {name: two, above: 1, notify: [ops, nobody]}
      - {name: one, above: 2}
    """)
    code, _out, err = run(capsys, "check", str(tmp_path))
    assert code == 3
    assert f"{tmp_path}/b.yaml:3: rule 'one': a rule with this name is already defined in {tmp_path}/a.yaml:4" \
        in err
    assert f"{tmp_path}/b.yaml:2: rule 'two': notify: unknown receiver 'nobody' (known: ops)" in err


def test_check_name_that_yaml_reads_as_a_boolean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "off.yaml", "rules:\n  - name: off\n    offline: true\n")
    code, _, err = run(capsys, "check", str(f))
    assert code == 3
    assert f"error: {f}:2: rules[0]: name: YAML reads this name as true/false; put it in quotes" in err


def test_check_yaml_syntax_error_and_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "broken.yaml", "rules:\n  - name: x\n    above: [1\n")
    code, _, err = run(capsys, "check", str(f))
    assert code == 3 and f"error: {f}:" in err and "not valid YAML" in err
    code, _, err = run(capsys, "check", str(tmp_path / "nope"))
    assert code == 3 and "no such file or folder" in err


def test_rules_test_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", str(DATA / "freezer_test.yaml"))
    assert code == 0, out
    assert "3 passed, 0 failed" in out


def test_rules_test_failure_prints_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "freezer.yaml").write_text((DATA / "freezer.yaml").read_text())
    f = write(tmp_path, "t_test.yaml", """
    rule_files: [freezer.yaml]
    tests:
      - name: wrong expectation
        interval: 1m
        input_series:
          - {series: freezer-1/t0/temperature, values: "-20 -10x8"}
        alerts:
          - at: 7m
            rule: freezer-warm
            expect: [{rule: freezer-warm, series: freezer-1/t0/temperature, state: pending}]
        notifications:
          - {at: 5m, rule: freezer-warm, series: freezer-1/t0/temperature, state: firing}
    """)
    code, out, _ = run(capsys, "test", str(f))
    assert code == 1
    assert "FAIL" in out and "wrong expectation" in out
    assert "-freezer-warm freezer-1/t0/temperature pending" in out
    assert "+freezer-warm freezer-1/t0/temperature firing" in out
    assert "-5m freezer-warm freezer-1/t0/temperature firing" in out
    assert "+6m freezer-warm freezer-1/t0/temperature firing" in out
    assert "0 passed, 1 failed" in out


def test_rules_test_bad_file_is_an_error_with_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "t_test.yaml", """
    rule_files: [missing.yaml]
    tests:
      - name: x
        input_series: [{series: a/b/temperature, values: "1 2 banana"}]
    """)
    code, _, err = run(capsys, "test", str(f))
    assert code == 3
    assert "missing.yaml: no such file or folder" in err


def test_rules_test_unknown_key_names_the_test_files_known_keys(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "t_test.yaml", """
    rule_file: [rules.yaml]
    tests:
      - name: x
        input_serie: []
    """)
    code, _, err = run(capsys, "test", str(f))
    assert code == 3
    assert f"{f}:1: rule_file: unknown key; did you mean 'rule_files'? (known keys: rule_files, tests)" in err
    assert (f"{f}:4: tests[0].input_serie: unknown key; did you mean 'input_series'? "
            "(known keys: alerts, input_series, interval, name, notifications, until)") in err
    assert "mqtt" not in err


def test_backtest_on_sqlite_history_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.core.event import Event
    from vigil.core.stores import open_store

    db = tmp_path / "vigil.db"
    store = open_store(f"sqlite:///{db}", retention=10 * 365 * 86400.0)
    t0 = 1_700_000_000.0
    store.write([Event("freezer-1", "t0", "temperature", v, t0 + 60 * i)
                 for i, v in enumerate([-20.0] * 3 + [-10.0] * 10 + [-20.0] * 3)])
    store.close()
    rules = DATA / "freezer.yaml"
    code, out, _ = run(capsys, "backtest", str(rules), "--store", f"sqlite:///{db}", "--from", "2023-11-14T22:13:20Z",
                       "--to", str(t0 + 3600))
    assert code == 0
    assert "FIRING    freezer-warm freezer-1/t0/temperature: freezer-1 is at -10.0 °C since 2023-11-14 22:16:20 UTC" \
        in out
    assert "RESOLVED  freezer-warm freezer-1/t0/temperature" in out
    assert "FIRING    freezer-silent freezer-1/t0/temperature" in out  # silent after the last point
    assert out.splitlines()[-1] == "3 notifications would have gone out (2 firing)"
    code, _, err = run(capsys, "backtest", str(rules), "--store", f"sqlite:///{tmp_path}/none.db", "--from=-1h")
    assert code == 2 and "no such file" in err
    assert not (tmp_path / "none.db").exists()
    code, _, err = run(capsys, "backtest", str(rules), "--store", f"sqlite:///{db}", "--from", "yesterday")
    assert code == 2 and "expected a time such as" in err
