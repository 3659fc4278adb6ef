"""``vigil edge``: run the edge agent, or check the wiring with ``--once``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Optional

from vigil.core.clock import SystemClock
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from vigil.core.topics import Topics

from .agent import EdgeAgent
from .config import PROTOCOLS, EdgeConfig, load_edge_file
from .errors import EdgeConfigError, QueueError, SensorError
from .payload import build_payload
from .queue import ReadingQueue, default_directory
from .sensors import build_sensor

__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "run"]

DESCRIPTION = """\
Run the Vigil edge agent on a device: read sensors (1-wire, SoC temperature, a command, a
file, or simulated), queue every reading on disk, and publish it to the MQTT broker as
<root>/readings/<device>/<sensor>. Readings taken while the broker is unreachable are
delivered, in order, when it is back, even after a restart.

The queue (queue.db) is in --queue DIR, else in $STATE_DIRECTORY (the systemd unit's
/var/lib/vigil-edge), else in $XDG_STATE_HOME/vigil-edge, else in ~/.local/state/vigil-edge.
On stop the agent says how many readings are still queued there. For you, here:
  {default}

Configuration: -c FILE is a standalone edge.yaml (the keys of vigil.yaml's edge: section), or a
whole vigil.yaml, whose edge: section is read (its mqtt: section is the default broker). Flags
override the file."""

EPILOG = """\
examples:
  vigil edge --broker mqtt://127.0.0.1:1883 --device pi-1 --simulate t0 --interval 1
  vigil edge --broker mqtt://127.0.0.1:1883 --device pi-2 --simulate t0 --queue /tmp/pi-2   a second agent here
  vigil edge -c /etc/vigil/edge.yaml
  vigil edge -c /etc/vigil/edge.yaml --once        read each sensor once, print, exit (check the wiring)
  VIGIL_MQTT_PASSWORD=secret vigil edge -c edge.yaml --broker mqtts://pi-1@broker.lan:8883
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Where the queue is for the person reading --help, with their environment.
    parser.description = DESCRIPTION.format(default=os.path.join(default_directory(), ReadingQueue.FILE_NAME))
    parser.add_argument("-c", "--config", metavar="FILE", help="edge.yaml, or a vigil.yaml with an edge: section")
    parser.add_argument("--broker", metavar="URL[,URL...]",
                        help="mqtt://[user@]host[:port] or mqtts://... for TLS; several, comma-separated "
                             "(mqtt://a:1883,mqtt://b:1883), are tried in turn when one fails (at most 16)")
    parser.add_argument("--device", metavar="NAME", help="this device's name in topics (default: the host name)")
    parser.add_argument("--simulate", metavar="NAME", action="append",
                        help="add a simulated sensor NAME (repeat, or a,b,c) for demos and tests")
    parser.add_argument("--interval", metavar="DURATION", help="default sampling interval (e.g. 1, 10s, 5m)")
    parser.add_argument("--queue", "--buffer", dest="queue", metavar="DIR",
                        help="directory of the on-disk queue (default: see above); :memory: keeps it in memory "
                             "only, and what is not sent is lost on stop")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="MQTT version (default: auto, MQTT 5, or 3.1.1 when the broker does not speak 5)")
    parser.add_argument("--once", action="store_true", help="read each sensor once, print the readings and exit")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="how much to log (default: info)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    simulate = [n.strip() for item in args.simulate or [] for n in item.split(",") if n.strip()] or None
    return {
        "--broker": (("mqtt", "url"), args.broker),
        "--device": (("device",), args.device),
        "--interval": (("interval",), args.interval),
        "--queue": (("buffer", "path"), args.queue),
        "--protocol": (("mqtt", "protocol"), args.protocol),
        "--simulate": ((), simulate),
    }


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vigil edge``."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_edge_file(args.config or "", _overrides(args))
    except EdgeConfigError as exc:
        for issue in exc.issues:
            print(f"vigil edge: {issue}", file=sys.stderr)
        return EXIT_CONFIG
    if args.once:
        return read_once(config)
    return run_agent(config)


def read_once(config: EdgeConfig, out: Any = None) -> int:
    """Take one reading of each sensor and print its topic and payload; 1 if any failed."""
    out = out or sys.stdout
    clock = SystemClock()
    topics = Topics(config.mqtt.root)
    failed = 0
    for sc in config.sensors:
        sensor = build_sensor(sc.kind, sc.name, sc.options, clock)
        try:
            value = sensor.read()
        except SensorError as exc:
            print(f"{sc.name}: ERROR {exc.reason}: {exc.detail}", file=out)
            failed += 1
            continue
        payload = build_payload(value, clock.now(), sc.unit, sc.metric, None, {**config.labels, **sc.labels})
        print(f"{topics.readings(config.device, sc.name)} {payload.decode('utf-8')}", file=out)
    return EXIT_FAILED if failed else 0


def run_agent(config: EdgeConfig) -> int:
    """Run until SIGTERM or SIGINT, then stop cleanly (the status goes offline)."""
    agent = EdgeAgent(config)
    try:
        agent.start()
    except QueueError as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stopping = threading.Event()

    def on_signal(signum: int, frame: Optional[Any]) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.is_set() and agent.failure is None:
            stopping.wait(0.5)
    finally:
        agent.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if agent.failure is not None:
        print(f"vigil edge: stopped on an error: {json.dumps(str(agent.failure))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
