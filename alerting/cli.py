"""``vigil alerting``: evaluate alert rules on events and send notifications."""

from __future__ import annotations

import argparse
import sys

from vigil.runtime import add_common_arguments, config_from_args, run_until_signal, setup_logging

DESCRIPTION = """\
Run the rule engine: consume normalized events (vigil/events/#) and device status (vigil/status/+),
evaluate the alert rules, publish every alert's state retained on vigil/alerts/<rule>/<series>, and
send notifications through apprise. Pending timers, firing alerts and notifications waiting to go
out live in the state file, so a restart neither loses nor repeats an alert. Rules with
'source: store' run on a schedule against the store (--store). Publish anything to
vigil/control/rules/reload to reload the rules files; acknowledge an alert by publishing
{"by": "...", "comment": "..."} to vigil/ack/<rule>/<series>."""

EPILOG = """\
examples:
  vigil alerting --broker mqtt://127.0.0.1:1883 --rules rules/ --state /var/lib/vigil/alerts.db
  vigil alerting -c /etc/vigil/vigil.yaml
  vigil alerting -c vigil.yaml --partition 0/2 --client-id vigil-alerting-0 --state alerts-0.db
  vigil rules check rules/            # check the rules before starting
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--rules", metavar="PATH", help="a rules file or a folder of *.yaml rules files")
    parser.add_argument("--state", metavar="PATH", help="the SQLite file that keeps alert state across restarts")
    parser.add_argument("--partition", metavar="I/N",
                        help="evaluate only the series with crc32(series) %% N == I (run N instances)")
    parser.add_argument("--client-id", metavar="ID", help="MQTT client id (fixed: the broker keeps its session)")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    config = config_from_args(args, {
        "alerting.rules": (args.rules, "--rules"),
        "alerting.state": (args.state, "--state"),
        "alerting.partition": (args.partition, "--partition"),
        "alerting.client_id": (args.client_id, "--client-id"),
    })
    from alerting.rules import RulesError
    from alerting.service import serve
    from alerting.state import StateError

    try:
        return run_until_signal(serve(config))
    except RulesError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print("fix the rules above (vigil rules check PATH), then start again", file=sys.stderr)
        return 3
    except StateError as exc:
        print(exc, file=sys.stderr)
        return 3
