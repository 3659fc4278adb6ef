"""``vigil rules test``: unit tests for rules, written in YAML (like ``promtool test rules``).

::

    rule_files: [freezer.yaml]          # relative to this file
    tests:
      - name: the freezer warms up
        interval: 1m                    # time between two values of an input series
        input_series:
          - series: freezer-1/t0/temperature
            values: "-20 -10x8 -20"     # VxN: N times V; A+BxN: A, A+B, ... (N+1 values); _ : no value
          - status: freezer-1
            values: "online _ offline"
        alerts:                         # what is pending, firing, flapping or cleared at a time (others: ok)
          - at: 3m
            expect: [{rule: freezer-warm, series: freezer-1/t0/temperature, state: pending}]
          - at: 7m
            expect: [{rule: freezer-warm, series: freezer-1/t0/temperature, state: firing,
                      message: "freezer-1 is at -10.0 °C"}]
        notifications:                  # every notification that would go out, in order
          - {at: 6m, rule: freezer-warm, series: freezer-1/t0/temperature, state: firing}
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from pydantic import BaseModel, Field, ValidationError

from alerting.intake import HeldOut
from alerting.replay import Replay, Status
from alerting.rules import Rule, RulesError, RuleSet, load_rules_path, refuse_hostile_yaml
from alerting.transition import AlertState
from vigil.core._yaml import YamlError, load_yaml
from vigil.core.configerrors import ConfigIssue, describe_errors
from vigil.core.configtypes import STRICT, Duration
from vigil.core.durations import format_duration
from vigil.core.event import Event

__all__ = ["TestFailure", "TestReport", "parse_values", "run_test_file"]

START = 1_700_000_000.0
#: the held-out readings a test's report lists (the rest are counted)
SHOW_HELD = 10
_MAX_VALUES = 1_000_000
_EXPAND = re.compile(r"^([-+]?[\d.]+(?:e[-+]?\d+)?)(?:([-+])([\d.]+(?:e[-+]?\d+)?))?x(\d+)$")


def parse_values(text: str) -> list[Union[float, str, None]]:
    """``"1 2x3 _ 0+5x2"`` -> [1, 2, 2, 2, None, 0, 5, 10]; online/offline stay words."""
    out: list[Union[float, str, None]] = []
    for token in str(text).split():
        if token == "_":
            out.append(None)
        elif token in ("online", "offline"):
            out.append(token)
        elif (m := _EXPAND.match(token)) is not None:
            start, sign, step, count = m.groups()
            # The bound is checked before the list grows (docs/proof.md, Figures behind the code).
            n = int(count) + (step is not None) if len(count) <= 7 else _MAX_VALUES + 1
            _check_bound(len(out) + n)
            if step is None:
                out += [float(start)] * n
            else:
                d = float(step) if sign == "+" else -float(step)
                out += [float(start) + d * i for i in range(n)]
        else:
            try:
                out.append(float(token))
            except ValueError:
                raise ValueError(f"cannot read value {token!r}: write numbers, VxN, A+BxN or _") from None
        _check_bound(len(out))
    return out


def _check_bound(n: int) -> None:
    if n > _MAX_VALUES:
        raise ValueError(f"more than {_MAX_VALUES:,} values in one input series; shorten the test, or use a "
                         "longer interval")


class InputSeries(BaseModel):
    model_config = STRICT

    series: Optional[str] = None
    status: Optional[str] = None
    values: str
    labels: dict[str, str] = Field(default_factory=dict)
    unit: str = ""


class ExpectedAlert(BaseModel):
    model_config = STRICT

    rule: str
    series: str
    state: AlertState = AlertState.FIRING
    message: Optional[str] = None
    severity: Optional[str] = None


class AlertCheck(BaseModel):
    model_config = STRICT

    at: Duration
    rule: Optional[str] = None  # compare only this rule's alerts
    expect: list[ExpectedAlert] = Field(default_factory=list)


class ExpectedNotification(BaseModel):
    model_config = STRICT

    at: Optional[Duration] = None
    rule: str
    series: str
    state: AlertState
    message: Optional[str] = None


class RuleTest(BaseModel):
    model_config = STRICT

    name: str = "test"
    interval: Duration = 60.0
    input_series: list[InputSeries] = Field(default_factory=list)
    alerts: list[AlertCheck] = Field(default_factory=list)
    notifications: Optional[list[ExpectedNotification]] = None
    until: Optional[Duration] = None


class RuleTestFile(BaseModel):
    model_config = STRICT

    rule_files: list[str] = Field(min_length=1)
    tests: list[RuleTest] = Field(min_length=1)


@dataclass
class TestFailure:
    test: str
    detail: str


@dataclass
class TestReport:
    passed: list[str] = field(default_factory=list)
    failures: list[TestFailure] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    #: per test, the readings a hold_out rule kept out of the other rules, in words
    held: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.issues


def run_test_file(path: Union[str, Path]) -> TestReport:
    """Run every test in a rules test file."""
    report = TestReport()
    p = Path(path)
    try:
        text = p.read_text("utf-8")
        refused = refuse_hostile_yaml(text)
        if refused is not None:
            report.issues.append(ConfigIssue(str(p), refused[0], "", refused[1]))
            return report
        data, pos = load_yaml(text, str(p))
    except (OSError, UnicodeDecodeError) as exc:
        report.issues.append(ConfigIssue(str(p), None, "", f"cannot read: {exc}"))
        return report
    except YamlError as exc:
        report.issues.append(ConfigIssue(str(p), exc.line, "", exc.message))
        return report
    try:
        spec = RuleTestFile.model_validate(data)
    except ValidationError as exc:
        report.issues += describe_errors(exc, RuleTestFile, pos, str(p))
        return report
    rules = RuleSet()
    all_rules: list[Rule] = []
    for name in spec.rule_files:
        try:
            loaded, _ = load_rules_path(p.parent / name)
        except RulesError as exc:
            report.issues += exc.issues
            continue
        all_rules += loaded.rules
        rules = RuleSet(tuple(all_rules), loaded.notify)
    if report.issues:
        return report
    for i, test in enumerate(spec.tests):
        held: list[HeldOut] = []
        try:
            problem = _run_one(rules, test, held)
        except ValueError as exc:
            report.issues.append(ConfigIssue(str(p), pos.get(("tests", i)), f"tests[{i}] ({test.name})", str(exc)))
            continue
        if held:
            report.held[test.name] = _held_lines(held)
        if problem:
            report.failures.append(TestFailure(test.name, problem))
        else:
            report.passed.append(test.name)
    return report


def _inputs(test: RuleTest) -> list[Union[Event, Status]]:
    items: list[Union[Event, Status]] = []
    for s in test.input_series:
        if (s.series is None) == (s.status is None):
            raise ValueError("each input series needs either series: device/sensor/metric or status: device")
        for i, v in enumerate(parse_values(s.values)):
            ts = START + i * test.interval
            if v is None:
                continue
            if s.status is not None:
                if not isinstance(v, str):
                    raise ValueError(f"status {s.status}: values are online, offline or _")
                items.append(Status(s.status, v == "online", ts))
            else:
                assert s.series is not None
                if isinstance(v, str):
                    raise ValueError(f"series {s.series}: {v!r} is a status word, not a value")
                parts = s.series.split("/")
                if len(parts) != 3:
                    raise ValueError(f"expected series device/sensor/metric, got {s.series!r}")
                device, sensor, metric = parts
                items.append(Event(device, sensor, metric, v, ts, s.unit,
                                   labels=tuple(sorted(s.labels.items()))))
    return items


def _alert_line(rule: str, series: str, state: str, message: Optional[str]) -> str:
    return f"{rule} {series} {state}" + (f"  message={message!r}" if message is not None else "")


def _held_lines(held: list[HeldOut]) -> list[str]:
    lines = [f"held out at {format_duration(h.ts - START)}: {h.series} {h.value:g} by {h.rule}"
             + (f" ({h.reason})" if h.reason else "") for h in held[:SHOW_HELD]]
    if len(held) > SHOW_HELD:
        lines.append(f"... and {len(held) - SHOW_HELD} more readings held out")
    return lines


def _run_one(rules: RuleSet, test: RuleTest, held: list[HeldOut]) -> Optional[str]:
    replay = Replay(rules, START)
    replay.engine.intake.listener = held.append
    items = sorted(_inputs(test), key=lambda i: i.ts)
    checks = sorted(test.alerts, key=lambda c: c.at)
    problems: list[str] = []
    k = 0
    for check in checks:
        t = START + check.at
        while k < len(items) and items[k].ts <= t:
            replay.feed(items[k])
            k += 1
        replay.advance(t)
        actual = sorted((r for r in replay.engine.alerts.values()
                        if r.state in (AlertState.PENDING, AlertState.FIRING, AlertState.FLAPPING,
                                       AlertState.CLEARED)
                        and (check.rule is None or r.rule == check.rule)), key=lambda r: r.key)
        want_msgs = {(e.rule, e.series): e.message for e in check.expect}
        got = sorted(_alert_line(r.rule, r.series, r.state.value,
                                 _message(r.last_transition) if want_msgs.get((r.rule, r.series)) else None)
                     for r in actual)
        want = sorted(_alert_line(e.rule, e.series, e.state.value, e.message) for e in check.expect)
        if got != want:
            problems.append(_diff(f"alerts at {format_duration(check.at)}", want, got))
    end = START + (test.until if test.until is not None else max(
        [c.at for c in checks] + [i.ts - START for i in items] + [0.0]))
    for item in items[k:]:
        if item.ts <= end:
            replay.feed(item)
    replay.advance(end)
    if test.notifications is not None:
        want_n = [f"{format_duration(n.at) if n.at is not None else '*'} "
                  + _alert_line(n.rule, n.series, n.state.value, n.message) for n in test.notifications]
        got_n = []
        expected: list[Optional[ExpectedNotification]] = [*test.notifications]
        expected += [None] * len(replay.notifications)
        for tr, n in zip(replay.notifications, expected):
            when = format_duration(tr.at - START) if (n is None or n.at is not None) else "*"
            msg = tr.message if (n is not None and n.message is not None) else None
            got_n.append(f"{when} " + _alert_line(tr.rule, tr.series, tr.state.value, msg))
        if got_n != want_n:
            problems.append(_diff("notifications", want_n, got_n))
    return "\n".join(problems) or None


def _message(last: Optional[str]) -> Optional[str]:
    if not last:
        return None
    import json

    return str(json.loads(last).get("message"))


def _diff(what: str, want: list[str], got: list[str]) -> str:
    lines = difflib.unified_diff(want, got, fromfile=f"expected {what}", tofile=f"actual {what}", lineterm="")
    return "\n".join(lines) if want != got else ""
