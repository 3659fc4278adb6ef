"""``vigil calibration``: a series' calibration history (the bridge's journal), and set or clear one over MQTT."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from vigil.app.config import VigilConfig
from vigil.app.runtime import add_common_arguments, config_from_args
from vigil.core.calibration import (
    JOURNAL_NAME,
    CalibrationError,
    CalibrationJournal,
    Change,
    parse_correction,
    parse_series,
)
from vigil.core.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vigil.core.urls import BrokerUrl

__all__ = ["add_arguments", "run"]

DESCRIPTION = """\
Calibration per series (device/sensor/metric): an offset, or two reference points [raw, reference],
in the metric's stored unit, applied by the bridge to the readings it receives after the change; the
value before it is stored beside the calibrated one (field raw). `history` reads the bridge's journal
(<data_dir>/bridge-calibration.jsonl: every change with who, when, what and the one before), so run it
where the bridge runs. `set` and `clear` publish the change retained on
vigil/calibration/<device>/<sensor>/<metric>, as the dashboard's Calibration form does. The latest
change wins; bridge.calibration in vigil.yaml is the initial value. See docs/calibration.md."""

EPILOG = """\
examples:
  vigil calibration history -c vigil.yaml
  vigil calibration history -c vigil.yaml --series freezer-1/t0/temperature --at 2026-12-01T08:00:00+00:00
  vigil calibration set -c vigil.yaml freezer-1/t0/temperature --offset -0.4 --by alice --note "ice bath"
  vigil calibration set -c vigil.yaml freezer-1/t0/temperature --points=-18.2:-18,0.4:0 --by alice
  vigil calibration clear -c vigil.yaml freezer-1/t0/temperature --by alice
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{history,set,clear}")
    history = sub.add_parser("history", help="the changes, oldest first (or the one in force at --at)")
    change = sub.add_parser("set", help="set a series' calibration (an offset or two points)")
    clear = sub.add_parser("clear", help="clear a series' calibration")
    for p in (history, change, clear):
        add_common_arguments(p, store=False)
        p.add_argument("--data-dir", metavar="DIR", help="the bridge's data directory (default: vigil.yaml's)")
    history.add_argument("--series", metavar="SERIES", help="only this series (device/sensor/metric)")
    history.add_argument("--at", metavar="TIME", help="the calibration in force at TIME (epoch seconds or ISO 8601 "
                         "with its UTC offset); needs --series")
    history.add_argument("--json", action="store_true", help="print JSON")
    for p in (change, clear):
        p.add_argument("series", help="device/sensor/metric")
        p.add_argument("--by", default="", help="who (default: the login name)")
        p.add_argument("--note", default="", help="what was done (reference, bath, certificate...)")
    change.add_argument("--offset", type=float, help="added to the raw value")
    change.add_argument("--points", metavar="RAW:REF,RAW:REF", help="two reference points (with '=' when the first "
                        "is negative: --points=-18.2:-18,0.4:0)")


def run(args: argparse.Namespace) -> int:
    extra = {"data_dir": (args.data_dir, "--data-dir")} if args.data_dir else {}
    config = config_from_args(args, extra)
    try:
        if args.action == "history":
            return _history(config, args.series, args.at, args.json)
        parse_series(args.series)
        return _change(config, args)
    except CalibrationError as exc:
        print(f"vigil calibration: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _when(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CalibrationError(f"--at {text!r}: expected epoch seconds or ISO 8601 such as "
                               "2026-12-01T08:00:00+00:00") from None
    if moment.tzinfo is None:
        raise CalibrationError(f"--at {text!r}: give its UTC offset (+00:00), or the time is ambiguous")
    return moment.timestamp()


def _line(c: Change) -> str:
    at = datetime.fromtimestamp(c.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = c.correction.describe() if c.correction else "cleared"
    before = c.previous.describe() if c.previous else "none"
    note = f"  ({c.note})" if c.note else ""
    return f"{at}  {c.series}  {what}  [before: {before}]  by {c.by} via {c.origin}{note}"


def _history(config: VigilConfig, series: Optional[str], at: Optional[str], as_json: bool) -> int:
    if series is not None:
        parse_series(series)
    journal = CalibrationJournal(Path(config.data_dir) / JOURNAL_NAME)
    if not journal.path.exists():
        print(f"vigil calibration: no journal at {journal.path} (the bridge writes it in its data directory; "
              "run this where the bridge runs, or give --data-dir)", file=sys.stderr)
        return EXIT_FAILED
    if at is not None:
        if series is None:
            raise CalibrationError("--at needs --series")
        found = journal.in_force(series, _when(at))
        if as_json:
            print(json.dumps(found.to_dict() if found else None, ensure_ascii=False))
        else:
            print(_line(found) if found else f"{series}: no calibration in force then")
        return EXIT_OK
    changes = journal.history(series)
    if as_json:
        print(json.dumps([c.to_dict() for c in changes], indent=2, ensure_ascii=False))
    else:
        print("\n".join(_line(c) for c in changes) if changes else "no calibration changes")
    return EXIT_OK


def _change(config: VigilConfig, args: argparse.Namespace) -> int:
    import getpass

    correction = None
    if args.action == "set":
        spec: dict[str, object] = {}
        if args.offset is not None:
            spec["offset"] = args.offset
        if args.points:
            try:
                spec["points"] = [[float(x) for x in p.split(":")] for p in args.points.split(",")]
            except ValueError:
                raise CalibrationError(f"--points {args.points}: expected RAW:REF,RAW:REF") from None
        correction = parse_correction(spec)
    change = Change(args.series, correction, time.time(), args.by or getpass.getuser(), args.note)
    device, sensor, metric = args.series.split("/")
    topic = config.mqtt.topics.calibration(device, sensor, metric)
    problem = _publish(config, topic, change.message())
    if problem:
        print(f"vigil calibration: {problem}", file=sys.stderr)
        return EXIT_FAILED
    print(f"published on {topic}: {correction.describe() if correction else 'cleared'} (the bridge applies it to "
          "the next readings)")
    return EXIT_OK


def _publish(config: VigilConfig, topic: str, payload: bytes) -> str:
    """Publish retained at QoS 1 and wait for the broker's acknowledgement; a sentence on failure.
    Several brokers (failover): retained messages live on each broker apart, so every broker that can be
    reached takes it (a bridge may be on any of them); one that cannot is named on stderr."""
    problems = []
    brokers = config.mqtt.brokers()
    for b in brokers:
        problem = _publish_to(config, b, topic, payload)
        if problem and not problem.startswith("cannot reach"):
            return problem
        problems.append(problem)
    if all(problems):
        return "; ".join(problems)
    for problem in filter(None, problems):
        print(f"vigil calibration: {problem}; it gets the change only when published again", file=sys.stderr)
    return ""


def _publish_to(config: VigilConfig, b: BrokerUrl, topic: str, payload: bytes) -> str:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from vigil.core.mqtt import ssl_context

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vigil-calibration-{time.time_ns() % 10**9}",
                         protocol=paho.MQTTv5 if config.mqtt.protocol == "5" else paho.MQTTv311)
    if b.username:
        client.username_pw_set(b.username, b.password)
    if b.tls:
        client.tls_set_context(ssl_context(config.mqtt))
    refusals: list[str] = []

    def on_publish(c: object, u: object, mid: int, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):  # MQTT 5: the broker acknowledged with a refusal
            refusals.append(str(reason))

    client.on_publish = on_publish
    try:
        client.connect(b.host, b.port, keepalive=30)
    except (OSError, ValueError) as exc:
        return f"cannot reach the broker {b.host}:{b.port}: {exc}"
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(10)
        if not info.is_published():
            return "the broker did not acknowledge the change within 10 s"
        if refusals:
            return (f"the broker refused the change ({refusals[0]}): the account needs `topic write "
                    f"{topic.rsplit('/', 3)[0]}/#` in its ACL")
    except (RuntimeError, ValueError) as exc:
        return f"publishing failed: {exc}"
    finally:
        client.disconnect()
        client.loop_stop()
    return ""
