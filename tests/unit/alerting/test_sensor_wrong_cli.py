"""The "When the sensor is wrong" examples of docs/rules.md (stale, stuck) through `vigil rules check` and `test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.app.cli import main

DATA = Path(__file__).parent / "data"


def test_stale_and_stuck_examples_check_and_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DATA / "sensor_wrong.yaml")]) == 0
    assert "2 rules" in capsys.readouterr().out
    code = main(["rules", "test", str(DATA / "sensor_wrong_test.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 passed, 0 failed" in out


def test_docs_show_the_tested_example() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "rules.md").read_text("utf-8")
    section = docs.split("## When the sensor is wrong", 1)[1]
    for name in ("sensor_wrong.yaml", "sensor_wrong_test.yaml"):
        assert (DATA / name).read_text("utf-8").strip() in section, name
