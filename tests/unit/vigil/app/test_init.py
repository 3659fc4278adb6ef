"""``vigil init``: a starting point that works, and nothing existing overwritten."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from alerting.rules import load_rules_path
from alerting.ruletest import run_test_file
from edge.config import load_edge_file
from vigil.app.config import load_config
from vigil.app.init import add_arguments, run


def _init(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(argv))


def test_init_writes_a_configuration_rules_with_passing_tests_and_an_edge_yaml(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _init(str(tmp_path / "site")) == 0
    site = tmp_path / "site"
    assert sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()) == [
        "edge.yaml", "rules/rules.yaml", "rules/rules_test.yaml", "vigil.yaml"]
    for name in ("vigil.yaml", "rules/rules.yaml", "rules/rules_test.yaml", "edge.yaml"):
        assert (site / name).read_text().startswith("#"), f"{name} is commented"
    config = load_config(site / "vigil.yaml")
    assert config.alerting.rules == "rules"
    rules, warnings = load_rules_path(site / "rules")
    assert [r.name for r in rules.rules] == ["freezer-warm", "sensor-silent"] and not warnings
    assert [u.template for u in rules.notify.receivers["phone"]] == [
        "ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}?priority=high"]
    report = run_test_file(site / "rules" / "rules_test.yaml")
    assert report.passed and not report.failures and not report.issues
    edge = load_edge_file(str(site / "edge.yaml"))
    assert edge.device == "pi-1" and [s.name for s in edge.sensors] == ["soc", "t0"]
    assert "wrote" in capsys.readouterr().out


def test_init_never_overwrites_and_says_what_it_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text("rules: []  # mine\n")
    (tmp_path / "vigil.yaml").write_text("data_dir: mine\n")
    assert _init(str(tmp_path), "--notify", "json://127.0.0.1:9/x") == 0
    out = capsys.readouterr().out
    assert (tmp_path / "rules" / "rules.yaml").read_text() == "rules: []  # mine\n"
    assert (tmp_path / "vigil.yaml").read_text() == "data_dir: mine\n"
    assert f"kept  {tmp_path / 'vigil.yaml'} (it exists; nothing in it was changed)" in out
    assert f"kept  {tmp_path / 'rules' / 'rules.yaml'}" in out
    assert f"wrote {tmp_path / 'edge.yaml'}" in out


def test_init_notify_puts_the_url_in_the_rules(tmp_path: Path) -> None:
    assert _init(str(tmp_path), "--notify", "ntfy://ntfy.sh/abc?priority=high") == 0
    rules, _ = load_rules_path(tmp_path / "rules")
    assert [u.template for u in rules.notify.receivers["phone"]] == ["ntfy://ntfy.sh/abc?priority=high"]


def test_rules_test_takes_a_folder_and_runs_the_tests_in_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alerting.rules_cli import add_arguments as rules_arguments
    from alerting.rules_cli import run as rules_run

    parser = argparse.ArgumentParser()
    rules_arguments(parser)
    assert _init(str(tmp_path)) == 0
    capsys.readouterr()
    assert rules_run(parser.parse_args(["test", str(tmp_path / "rules")])) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"
    (tmp_path / "empty").mkdir()
    assert rules_run(parser.parse_args(["test", str(tmp_path / "empty")])) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'empty'}: no rule tests in this folder (files named *_test.yaml or *.test.yaml)"]
