"""Frequent reboots (``restarts``) on a manual clock: an uptime that goes down is a reboot; the count
and the window are in the message; a late reading, a steady device and a slow counter raise nothing.
The docs' device-health example (docs/rules.md) passes `vigil rules test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rules import RulesError, load_rules_text
from tests.support.engine import T0, engine, feed
from vigil.app.cli import main

DATA = Path(__file__).parent / "data"
RULE = """
rules:
  - name: reboots
    match: {metric: uptime}
    restarts: {count: 3, within: 1d}
"""


def run(values: list[float], step: float = 3600.0, rule: str = RULE) -> list[tuple[float, str, str, float]]:
    e, _sink, clock = engine(rule)
    out = []
    for v in values:
        out += [(t.at - T0, t.state.value, t.message, t.value) for t in
                feed(e, clock, v, device="garage-pi", sensor="system", metric="uptime")]
        clock.advance(step)
    return out


def ramp(hours: int, start: float = 0.0) -> list[float]:
    return [start + 3600.0 * i for i in range(hours)]


def test_three_reboots_in_a_day_fire_then_resolve_as_they_age_out() -> None:
    out = run(ramp(6) + ramp(4) + ramp(3) + ramp(30))  # up again at 6h, 10h, 13h
    assert [(at / 3600, s) for at, s, _, _ in out] == [(13, "firing"), (30, "resolved")]
    assert out[0][2:] == ("garage-pi rebooted 3 times in the last 24h", 3.0)
    assert out[1][2] == "garage-pi rebooted 2 times in the last 24h (fewer than 3)"


def test_a_steady_device_and_reboots_spread_over_days_raise_nothing() -> None:
    assert run(ramp(100, start=5e6)) == []
    # one reboot every 13 hours: never 3 within a day
    assert run(ramp(13) * 6) == []


def test_a_late_reading_is_not_a_reboot() -> None:
    e, _sink, clock = engine(RULE)
    from tests.support.engine import ev
    out = []
    for i in range(10):
        out += e.on_event(ev(1000.0 + 60 * i, clock.now(), "d", "system", "uptime"))
        # an older reading (lower uptime) arriving late, again and again
        out += e.on_event(ev(900.0, clock.now() - 100, "d", "system", "uptime"))
        clock.advance(60)
    assert out == []


def test_once_and_wording_of_a_long_window() -> None:
    rule = RULE.replace("count: 3, within: 1d", "count: 1, within: 1w")
    out = run([100.0, 5.0], rule=rule)
    assert [(s, m) for _, s, m, _ in out] == [("firing", "garage-pi rebooted once in the last 7d")]


@pytest.mark.parametrize(("spec", "words"), [
    ("{count: 0}", "count"), ("{count: -1}", "count"), ("{count: 1e9}", "count"), ("{count: 2.5}", "count"),
    ("{within: 0s}", "within"), ("{within: -1d}", "within"), ("{within: soon}", "within"),
    ("{count: 3, every: 1d}", "every"), ("3", "restarts"), ("[3, 1d]", "restarts"),
])
def test_bad_specs_are_refused_with_the_field(spec: str, words: str) -> None:
    with pytest.raises(RulesError) as err:
        load_rules_text(f"rules:\n  - name: r\n    restarts: {spec}\n", "t.yaml")
    assert words in str(err.value)


def test_restarts_is_one_condition() -> None:
    with pytest.raises(RulesError, match="restarts"):
        load_rules_text("rules:\n  - name: r\n    restarts: {}\n    below: 3\n", "t.yaml")
    rules, _ = load_rules_text("rules:\n  - name: r\n    any: [{restarts: {}}, {below: 3}]\n", "t.yaml")
    assert rules


def test_docs_example_checks_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DATA / "device_health.yaml")]) == 0
    assert "2 rules" in capsys.readouterr().out
    code = main(["rules", "test", str(DATA / "device_health_test.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 passed, 0 failed" in out
    docs = (Path(__file__).parents[3] / "docs" / "rules.md").read_text("utf-8")
    section = docs.split("### Device health", 1)[1]
    for name in ("device_health.yaml", "device_health_test.yaml"):
        assert (DATA / name).read_text("utf-8").strip() in section, name
