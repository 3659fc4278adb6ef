"""``vigil rules check`` and ``vigil rules test`` with a latched rule: the option is checked, and a rule test
sees the alert cleared (and notified) until the end of the test, as nobody acknowledges it there."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vigil.app.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["rules", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_check_refuses_a_latch_that_is_not_true_or_false(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "r.yaml", """
    rules:
      - {name: ok-rule, above: 5, latch: true}
      - {name: bad-rule, above: 5, latch: until-monday}
    """)
    code, out = run(capsys, "check", str(f))
    assert code != 0
    assert "r.yaml:3" in out and "latch" in out and "ok-rule" not in out, out


def test_a_rule_test_sees_the_latched_alert_cleared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "freezer.yaml", """
    rules:
      - {name: freezer-warm, above: -15, latch: true}
    """)
    f = write(tmp_path / "freezer_test.yaml", """
    rule_files: [freezer.yaml]
    tests:
      - name: a short excursion stays to be seen
        interval: 1m
        input_series:
          - {series: freezer-1/t0/temperature, values: "-20 -10 -12 -20x5"}
        alerts:
          - at: 2m
            expect: [{rule: freezer-warm, series: freezer-1/t0/temperature, state: firing}]
          - at: 7m
            expect: [{rule: freezer-warm, series: freezer-1/t0/temperature, state: cleared}]
        notifications:
          - {at: 1m, rule: freezer-warm, series: freezer-1/t0/temperature, state: firing}
          - {at: 3m, rule: freezer-warm, series: freezer-1/t0/temperature, state: cleared}
    """)
    code, out = run(capsys, "test", str(f))
    assert code == 0, out
    assert "1 passed, 0 failed" in out
