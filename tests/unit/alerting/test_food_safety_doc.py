"""docs/food-safety.md's configuration examples are what Vigil accepts: its rules-file blocks, together, pass
`vigil rules check`, and its vigil.yaml block `vigil config check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vigil.app.cli import main

DOC = Path(__file__).parents[3] / "docs" / "food-safety.md"
RULES_KEYS = ("rules:", "receivers:", "schedules:", "escalation_policies:", "reports:")


def blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text("utf-8"), re.S)


def test_the_rules_examples_check_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rules = [b for b in blocks() if b.startswith(RULES_KEYS)]
    assert len(rules) == 3, rules  # the latched rule, the people and their policy, the weekly report
    for i, text in enumerate(rules):
        (tmp_path / f"{i}.yaml").write_text(text)
    for name in set(re.findall(r"\$\{(VIGIL_NOTIFY_\w+)\}", "".join(rules))):
        monkeypatch.setenv(name, "secret")
    code = main(["rules", "check", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out
    assert "1 rule" in out.out, out


def test_the_vigil_yaml_example_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config,) = [b for b in blocks() if b.startswith("dashboard:")]
    (tmp_path / "vigil.yaml").write_text(config)
    code = main(["config", "check", str(tmp_path / "vigil.yaml")])
    assert code == 0, capsys.readouterr()
