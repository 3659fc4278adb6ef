"""The hold_out example of docs/rules.md through `vigil rules test`: it passes, and the output lists the
held-out reading and why, exactly as the docs show it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vigil.app.cli import main

DATA = Path(__file__).parent / "data"
DOCS = Path(__file__).parents[3] / "docs" / "rules.md"
COMMAND = "$ vigil rules test rules/hold_out_test.yaml\n"


def test_the_docs_example_passes_and_lists_the_held_out_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    for name in ("hold_out.yaml", "hold_out_test.yaml"):
        shutil.copy(DATA / name, tmp_path / "rules" / name)
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "test", "rules/hold_out_test.yaml"]) == 0
    out = capsys.readouterr().out
    assert "  held out at 20s: freezer-2/t0/temperature 25 by freezer-implausible (freezer-2/t0 jumped from " \
           "-18.1 to 25.0 °C in 10 s)\n" in out
    docs = DOCS.read_text("utf-8")
    assert COMMAND + out in docs  # the docs show the output verbatim
    for name in ("hold_out.yaml", "hold_out_test.yaml"):
        assert (DATA / name).read_text("utf-8").strip() in docs, name


def test_a_failing_test_lists_its_held_out_readings_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(DATA / "hold_out.yaml", tmp_path / "hold_out.yaml")
    test = (DATA / "hold_out_test.yaml").read_text("utf-8").replace("state: resolved}", "state: firing}")
    (tmp_path / "t_test.yaml").write_text(test.replace('"-18.2 -18.1 25 -18 -18.1"', '"-18 25x12 -18"'))
    assert main(["rules", "test", str(tmp_path / "t_test.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL " in out and out.count("  held out at ") == 10 and "  ... and 2 more readings held out\n" in out
