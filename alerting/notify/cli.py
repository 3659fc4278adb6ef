"""``vigil notify test|status``: try the receivers of a rules file; show what delivery is doing."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import sys
from pathlib import Path

from vigil.core import sqldb
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

DESCRIPTION = """\
Check notification delivery.

  test PATH     send a test message to every receiver of the rules (file or folder), or to the
                ones named with --receiver, and print what each URL answered (secrets masked);
                exits 1 when one failed
  status        print the alerts delivery knows, who was told, acknowledgements, silences,
                receivers that keep failing and messages waiting, from the state file"""

EPILOG = """\
examples:
  vigil notify test rules/
  NTFY_TOPIC=freezers vigil notify test rules/kitchen.yaml --receiver kitchen-staff
  vigil notify status --state vigil-data/alerts.db
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = sub.add_parser("test", help="send a test message to the receivers of a rules file or folder")
    test.add_argument("path", metavar="PATH", help="a rules file or a folder of *.yaml files")
    test.add_argument("--receiver", action="append", metavar="NAME", help="only this receiver (repeatable)")
    status = sub.add_parser("status", help="show alerts, silences and failing receivers from the state file")
    status.add_argument("--state", metavar="PATH", default="vigil-data/alerts.db",
                        help="the alerting state file (or its postgresql:// URL)")


def run(args: argparse.Namespace) -> int:
    if args.notify_command == "test":
        return asyncio.run(_test(args.path, args.receiver))
    return _status(args.state)


async def _test(path: str, only: list[str] | None) -> int:
    from alerting.rules import RulesError, load_rules_path
    from alerting.transition import Severity

    from .apprise_sender import AppriseSender
    from .config import MissingSecret

    try:
        rules, _ = load_rules_path(path)
    except RulesError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return EXIT_CONFIG
    receivers = rules.notify.receivers
    unknown = [n for n in only or [] if n not in receivers]
    if unknown or not receivers:
        known = ", ".join(sorted(receivers)) or "none"
        print(f"error: {path}: no receiver {unknown[0]!r} (known: {known})" if unknown
              else f"error: {path}: no receivers are defined", file=sys.stderr)
        return EXIT_CONFIG
    sender, failed = AppriseSender(timeout=30), 0
    for name in only or sorted(receivers):
        for url in receivers[name]:
            try:
                resolved = url.resolve()
            except MissingSecret as exc:
                print(f"FAIL  {name}  {url.masked}: {exc}")
                failed += 1
                continue
            result = await sender.send([resolved], "[TEST info] Vigil notification test",
                                       f"If you can read this, the receiver {name!r} works.", severity=Severity.INFO)
            print(f"ok    {name}  {url.masked}" if result.ok else f"FAIL  {name}  {url.masked}: {result.error}")
            failed += 0 if result.ok else 1
    return EXIT_FAILED if failed else 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status(state: str) -> int:
    from .state import NotifyState

    postgres = sqldb.is_postgres(state)
    if not postgres and not Path(state).is_file():
        print(f"error: {state}: no such state file (vigil alerting --state PATH writes it)", file=sys.stderr)
        return EXIT_CONFIG
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
    try:
        if postgres:
            import psycopg

            errors += (psycopg.Error,)
            conn: sqldb.Connection = sqldb.connect(state, application_name="vigil-notify-status")
        else:
            conn = sqlite3.connect(f"file:{Path(state).resolve()}?mode=ro", uri=True)
        st = NotifyState(conn, create=False)
        alerts, silences = st.alerts(), st.silences(dt.datetime.now(dt.timezone.utc).timestamp())
        failing, waiting = st.failing(3), st.waiting_deliveries()
    except errors as exc:
        print(f"error: {sqldb.redact(state)}: not an alerting state database ({exc})" if postgres
              else f"error: {state}: not an alerting state file ({exc})", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{len(alerts)} alert(s) firing, cleared (waiting for an acknowledgement) or flapping")
    for a in alerts:
        told = ", ".join(sorted(st.told(a.key))) or "nobody yet"
        ack = f"acknowledged by {a.acked_by} at {_when(a.acked_at)}" if a.acked_by else "not acknowledged"
        print(f"  {a.state:8} {a.transition.severity.value:8} {a.key}  since {_when(a.fired_at)}; told: {told}; {ack}")
    print(f"{len(silences)} silence(s)")
    for s in silences:
        print(f"  {s.id}  {s.match.model_dump()}  until {_when(s.ends)}  by {s.by}: {s.comment}")
    print(f"{waiting} message(s) waiting to be sent")
    for f in failing:
        print(f"  failing: {f.receiver} {f.url}: {f.attempts} attempts, {f.waiting} waiting; "
              f"last error: {f.last_error}")
    conn.close()
    return EXIT_OK
