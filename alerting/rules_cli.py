"""``vigil rules check|test|backtest``: validate rules, unit-test them, replay them on history."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE

DESCRIPTION = """\
Work with alert rules before they go live.

  check PATH      validate a rules file or folder: every error with file:line and the rule's name,
                  warnings for rules that can never match or never fire; receiver URLs may
                  name only environment variables VIGIL_NOTIFY_* (${VIGIL_NOTIFY_SMTP_PASS})
  test PATH...    run rule unit tests written in YAML (input series, the alerts and notifications
                  expected at given times; a folder: its *_test.yaml and *.test.yaml files); prints
                  a diff and exits 1 on a failure
  backtest PATH   replay stored history (--store, --from, --to) through the rules and print what
                  would have fired and when; sends nothing"""

EPILOG = """\
examples:
  vigil rules check rules/
  vigil rules test rules/tests/freezer_test.yaml
  vigil rules backtest rules/ --store influxdb1://127.0.0.1:8086/vigil --from 2026-11-01 --to 2026-11-08
  vigil rules backtest rules/freezer.yaml --store sqlite:///vigil-data/vigil.db --from=-24h
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate rules files")
    check.add_argument("path", metavar="PATH", help="a rules file or a folder of *.yaml files")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    test = sub.add_parser("test", help="run rule unit tests written in YAML")
    test.add_argument("files", metavar="PATH", nargs="+",
                      help="rule test files, or folders holding *_test.yaml / *.test.yaml files")
    bt = sub.add_parser("backtest", help="replay stored history through the rules; sends nothing")
    bt.add_argument("path", metavar="PATH", help="a rules file or a folder of *.yaml files")
    bt.add_argument("--store", metavar="URL", required=True, help="the store to read history from")
    bt.add_argument("--from", dest="start", metavar="TIME", required=True,
                    help="start: RFC 3339 (2026-11-01T00:00:00Z), a date, epoch seconds, "
                    "or --from=-24h (that long ago)")
    bt.add_argument("--to", dest="end", metavar="TIME", default="now", help="end (default: now)")


def parse_time(text: str, now: float) -> float:
    """RFC 3339, a date, epoch seconds, ``now`` or ``-2h`` (that long ago); ValueError otherwise."""
    from vigil.core.durations import parse_duration

    t = text.strip()
    if t == "now":
        return now
    if t.startswith("-"):
        return now - parse_duration(t[1:])
    try:
        return float(t)
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a time such as 2026-11-01T00:00:00Z, 1700000000 or -24h, got {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def run(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        return _check(args.path, args.strict)
    if args.rules_command == "test":
        return _test(args.files)
    return _backtest(args.path, args.store, args.start, args.end)


def _check(path: str, strict: bool) -> int:
    from alerting.rules import RulesError, load_rules_path

    try:
        rules, warnings = load_rules_path(path)
    except RulesError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{len(exc.issues)} error(s) in {path}", file=sys.stderr)
        return EXIT_CONFIG
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    receivers = len(rules.notify.receivers)
    for name in rules.notify.missing_secrets():
        # Not a warning: the check may run on another machine than the rule engine.
        print(f"note: ${{{name}}} is not set here; the rule engine needs it in its environment", file=sys.stderr)
    print(f"{path}: {len(rules.rules)} rules, {receivers} receivers, {len(warnings)} warnings")
    return EXIT_FAILED if strict and warnings else 0


def _test(files: list[str]) -> int:
    from alerting.ruletest import run_test_file

    failed = invalid = passed = 0
    found: list[str] = []
    for path in files:
        if Path(path).is_dir():
            tests = sorted(str(p) for p in Path(path).iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
                           and p.stem.endswith(("_test", ".test")))
            if not tests:
                print(f"error: {path}: no rule tests in this folder (files named *_test.yaml or *.test.yaml)",
                      file=sys.stderr)
                invalid += 1
            found += tests
        else:
            found.append(path)
    for f in found:
        report = run_test_file(f)
        for issue in report.issues:
            print(f"error: {issue}", file=sys.stderr)
            invalid += 1
        for name in report.passed:
            print(f"PASS {f}: {name}")
            print("".join(f"  {line}\n" for line in report.held.get(name, ())), end="")
            passed += 1
        for failure in report.failures:
            print(f"FAIL {f}: {failure.test}\n{failure.detail}\n")
            print("".join(f"  {line}\n" for line in report.held.get(failure.test, ())), end="")
            failed += 1
    print(f"{passed} passed, {failed} failed" + (f", {invalid} errors" if invalid else ""))
    if invalid:
        return EXIT_CONFIG
    return EXIT_FAILED if failed else 0


def _backtest(path: str, store_url: str, start_text: str, end_text: str) -> int:
    import time

    from alerting.backtest import backtest
    from alerting.rules import RulesError, load_rules_path
    from alerting.templates import fmt_time
    from vigil.core.stores import StoreError, open_store
    from vigil.core.urls import UrlError, mask_url, parse_store_url

    now = time.time()
    try:
        start, end = parse_time(start_text, now), parse_time(end_text, now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if end <= start:
        print("error: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    try:
        rules, _ = load_rules_path(path)
    except RulesError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        parsed = parse_store_url(store_url)
        if parsed.kind == "sqlite" and not Path(parsed.path).exists():
            print(f"error: --store {store_url}: no such file (a backtest reads history; it creates no store)",
                  file=sys.stderr)
            return EXIT_USAGE
        store = open_store(parsed)
    except (UrlError, StoreError, ValueError) as exc:
        print(f"error: --store {mask_url(store_url)}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = backtest(rules, store, start, end)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    print(f"backtest {fmt_time(start)} .. {fmt_time(end)}: {result.series} series, {result.points} points, "
          f"{len(rules.rules)} rules (nothing is sent)")
    for t in result.transitions:
        if t.state.value == "pending" or (t.state.value == "ok"):
            continue
        print(f"{fmt_time(t.at)}  {t.state.value.upper():9} {t.rule} {t.series}: {t.message}")
    firing = sum(1 for t in result.notifications if t.state.value == "firing")
    print(f"{len(result.notifications)} notifications would have gone out ({firing} firing)")
    return EXIT_OK
