"""The Rules page's form: it changes only the bytes of the values it edits."""

from __future__ import annotations

import pytest

from alerting.rules import load_rules_text
from dashboard.rules_edit import EditError, apply_edits, rule_fields
from vigil.app.dashboard_wiring import EngineRules

HOSTILE = EngineRules().hostile

RULES = """# Kitchen rules: keep this comment
receivers:
  night: "tgram://123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs/-100123"

rules:
# the freezer (a comment at column 0, inside the list)
- name: freezer-warm
  match: {metric: temperature, device: freezer}
  above: -15          # fire when above -15 ...
  clear_below: -17    # ... and clear only below -17
  for: 5m
  severity: critical
  message: >-
    {{ device }} is at {{ value | round(1) }} °C:
    is the door open?

- {name: door-offline, offline: true, match: {device: freezer}, for: 1m}   # one line

-   name: greenhouse-silent
    match: {device: greenhouse}
    nodata: 10m
"""


def test_fields_are_read_as_written() -> None:
    forms = {r["name"]: r for r in rule_fields(RULES, HOSTILE)}
    assert forms["freezer-warm"]["fields"]["for"] == "5m"
    assert forms["freezer-warm"]["fields"]["above"] == "-15"
    assert forms["freezer-warm"]["kind"] == "threshold" and forms["freezer-warm"]["line"] == 7
    assert forms["door-offline"]["kind"] == "offline"
    assert forms["greenhouse-silent"]["kind"] == "nodata"
    assert forms["freezer-warm"]["match"] == {"metric": "temperature", "device": "freezer"}
    assert rule_fields("rules: [", HOSTILE) == []


def test_changing_values_moves_no_other_byte() -> None:
    out = apply_edits(RULES, "freezer-warm", {"above": "-14.5", "for": "10m", "severity": "warning"}, HOSTILE)
    assert out == (RULES.replace("above: -15 ", "above: -14.5 ", 1).replace("for: 5m", "for: 10m", 1)
                   .replace("severity: critical", "severity: warning", 1))
    load_rules_text(out, "rules.yaml")  # still loads


def test_added_and_removed_keys_are_one_line_each() -> None:
    out = apply_edits(RULES, "greenhouse-silent", {"for": "2m", "severity": "info"}, HOSTILE)
    assert out == RULES + "    for: 2m\n    severity: info\n"
    assert apply_edits(out, "greenhouse-silent", {"for": None, "severity": ""}, HOSTILE) == RULES
    no_hysteresis = apply_edits(RULES, "freezer-warm", {"clear_below": None}, HOSTILE)
    assert no_hysteresis == RULES.replace("  clear_below: -17    # ... and clear only below -17\n", "")
    # a key added after a folded message goes after the message, at the rule's indentation
    added = apply_edits(RULES, "freezer-warm", {"below": "-30"}, HOSTILE)
    assert "    is the door open?\n  below: -30\n\n- {name: door-offline" in added
    load_rules_text(added, "rules.yaml")


def test_a_rule_on_one_line_is_edited_in_place() -> None:
    out = apply_edits(RULES, "door-offline", {"for": "3m", "severity": "critical", "rate.above": "2"}, HOSTILE)
    line = "- {name: door-offline, offline: true, match: {device: freezer}, for: 3m, severity: critical, " \
           "rate: {above: 2}}   # one line\n"
    assert line in out and out.replace(line, "") == RULES.replace(
        "- {name: door-offline, offline: true, match: {device: freezer}, for: 1m}   # one line\n", "")
    assert "for: 1m}" in apply_edits(out, "door-offline", {"severity": None, "rate.above": None, "for": "1m"}, HOSTILE)
    assert apply_edits(out, "door-offline", {"severity": None, "rate.above": None, "for": "1m"}, HOSTILE) == RULES


def test_rate_is_added_as_a_mapping_and_removed_with_its_last_key() -> None:
    out = apply_edits(RULES, "greenhouse-silent", {"rate.window": "5m", "rate.above": "2"}, HOSTILE)
    assert out.endswith("    nodata: 10m\n    rate: {window: 5m, above: 2}\n")
    assert apply_edits(out, "greenhouse-silent", {"rate.window": None, "rate.above": None}, HOSTILE) == RULES


@pytest.mark.parametrize(("fields", "words"), [
    ({"above": "lots"}, "above: expected a number"),
    ({"above": "nan"}, "above: expected a number"),
    ({"above": "1 # x"}, "above: expected a number"),
    ({"for": "5 minutes"}, "for: expected a duration"),
    ({"severity": "loud"}, "severity: expected one of info, warning, critical"),
    ({"offline": "yes"}, "offline: expected true or false"),
    ({"message": "hi"}, "the form cannot edit message"),
])
def test_bad_values_are_refused_with_what_was_expected(fields: dict[str, str], words: str) -> None:
    with pytest.raises(EditError, match=words):
        apply_edits(RULES, "freezer-warm", fields, HOSTILE)


def test_an_unknown_rule_or_a_broken_file_is_said() -> None:
    with pytest.raises(EditError, match="no rule named 'nope'"):
        apply_edits(RULES, "nope", {"for": "1m"}, HOSTILE)
    with pytest.raises(EditError, match="line 3: not valid YAML"):
        apply_edits("rules:\n  - name: [x\n", "x", {"for": "1m"}, HOSTILE)
    with pytest.raises(EditError, match="aliases"):
        apply_edits("a: &x 1\nrules:\n  - name: y\n    above: *x\n", "y", {"for": "1m"}, HOSTILE)
    with pytest.raises(EditError, match="line 1: not valid YAML"):
        apply_edits("a: *\n", "y", {"for": "1m"}, HOSTILE)
    with pytest.raises(EditError, match="larger than 512 KB"):
        apply_edits("rules:\n" + "  - {name: x, above: 1}\n" * 30_000, "x", {"for": "1m"}, HOSTILE)
    with pytest.raises(EditError, match="nested too deeply"):
        apply_edits("a: " + "[" * 1200, "y", {"for": "1m"}, HOSTILE)
    assert rule_fields("a: " + "[" * 1200, HOSTILE) == []


def test_a_message_that_keeps_its_blank_lines_keeps_them() -> None:
    text = "rules:\n  - name: x\n    above: 1\n    message: |+\n      hot\n\n\n  - name: y\n    above: 2\n"
    out = apply_edits(text, "x", {"for": "1m"}, HOSTILE)
    assert out == text.replace("      hot\n\n\n", "      hot\n\n\n    for: 1m\n")
    folded = "rules:\n  - name: x\n    above: 1\n    message: >-\n      hot\n\n\n  - name: y\n    above: 2\n"
    assert apply_edits(folded, "x", {"for": "1m"}, HOSTILE) == folded.replace("      hot\n", "      hot\n    for: 1m\n")
