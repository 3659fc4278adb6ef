"""``vigil alerting``: evaluate alert rules on events and send notifications."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Optional

from vigil.core.sitetime import site_zone

if TYPE_CHECKING:
    from vigil.app.config import VigilConfig
    from vigil.core.stores import Store
from vigil.app.runtime import add_common_arguments, check_at_start, config_from_args, run_until_signal, setup_logging
from vigil.core.exitcodes import EXIT_CONFIG

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
  vigil alerting -c vigil.yaml --state postgresql://vigil@db.example/vigil    # on two machines or more
  vigil rules check rules/            # check the rules before starting
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--rules", metavar="PATH", help="a rules file or a folder of *.yaml rules files")
    parser.add_argument("--state", metavar="PATH|URL", help="the SQLite file that keeps alert state across restarts, "
                        "or a postgresql:// URL shared by several engines that take over each other's partitions "
                        "(docs/scaling.md)")
    parser.add_argument("--data-dir", metavar="DIR", help="the site's data directory, shared with the dashboard: "
                        "the link secret, scheduled reports' files (default: vigil-data)")
    parser.add_argument("--partition", metavar="I/N",
                        help="evaluate only the series with crc32(series) %% N == I (run N instances)")
    parser.add_argument("--client-id", metavar="ID", help="MQTT client id (fixed: the broker keeps its session)")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve the engine's metrics on this address")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    config = config_from_args(args, {
        "alerting.rules": (args.rules, "--rules"),
        "alerting.state": (args.state, "--state"),
        "data_dir": (args.data_dir, "--data-dir"),
        "alerting.partition": (args.partition, "--partition"),
        "alerting.client_id": (args.client_id, "--client-id"),
        "alerting.metrics_listen": (args.metrics_listen, "--metrics-listen"),
    })
    from alerting.rules import RulesError
    from alerting.state import StateError

    # The store only for rules over stored history (source: store), which read it.
    if not check_at_start(config, "alerting", config.alerting.client_id, store=_reads_store(config)):
        return EXIT_CONFIG
    try:
        return run_until_signal(serve_alerting(config))
    except RulesError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print("fix the rules above (vigil rules check PATH), then start again", file=sys.stderr)
        return EXIT_CONFIG
    except StateError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG


async def serve_alerting(config: VigilConfig, *, store: Optional[Store] = None,
                         ready: Optional[asyncio.Event] = None) -> None:
    """The rule engine on its own settings, with what it needs of the other parts' (the dashboard's
    address for links, the site's time zone, the data directory its link secret is shared in) resolved
    here; ``store``: one already open (vigil up)."""
    from alerting.service import serve

    await serve(config.alerting, config.mqtt, store or config.store, public_url=config.dashboard.public_url,
                zone=site_zone(config.dashboard.timezone), ready=ready, data_dir=config.data_dir)


def _reads_store(config: VigilConfig) -> bool:
    """Do the rules read the store (source: store)? Unreadable rules: no, serve() reports them."""
    from alerting.rules import RulesError, load_rules_path

    try:
        rules, _ = load_rules_path(config.alerting.rules)
    except RulesError:
        return False
    return any(rule.spec.source == "store" for rule in rules.rules)
