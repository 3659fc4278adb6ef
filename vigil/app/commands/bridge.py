"""``vigil bridge``: normalize readings from MQTT, store them, republish them as events."""

from __future__ import annotations

import argparse

from vigil.app.runtime import add_common_arguments, check_at_start, config_from_args, run_until_signal, setup_logging
from vigil.core.exitcodes import EXIT_CONFIG

DESCRIPTION = """\
Run the bridge: subscribe to readings (Vigil's own JSON and the sources in the configuration:
Tasmota, zigbee2mqtt, Shelly, ESPHome, JSON paths, line protocol), normalize and check them,
store them, and republish each as an event on vigil/events/<device>/<metric>. What it refuses goes
to vigil/deadletter/<source> with the reason. A message is acknowledged to the broker only once it
is stored (or spooled to disk while the store is down), so nothing is lost."""

EPILOG = """\
examples:
  vigil bridge --broker mqtt://127.0.0.1:1883 --store influxdb1://127.0.0.1:8086/vigil
  vigil bridge -c /etc/vigil/vigil.yaml
  vigil bridge -c vigil.yaml --shared-group bridges      # run several; the broker splits the load
  vigil bridge --store sqlite:///var/lib/vigil/vigil.db --metrics-listen 127.0.0.1:9108
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--shared-group", metavar="NAME",
                        help="subscribe through $share/NAME/... so several bridges split the load")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve Prometheus metrics on /metrics")
    parser.add_argument("--client-id", metavar="ID", help="MQTT client id (fixed: the broker keeps its session)")
    parser.add_argument("--data-dir", metavar="DIR", help="where the disk spool lives (default: vigil-data)")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    config = config_from_args(args, {
        "bridge.shared_group": (args.shared_group, "--shared-group"),
        "bridge.metrics_listen": (args.metrics_listen, "--metrics-listen"),
        "bridge.client_id": (args.client_id, "--client-id"),
        "data_dir": (args.data_dir, "--data-dir"),
    })
    if not check_at_start(config, "bridge", config.bridge.client_id):
        return EXIT_CONFIG
    from broker_bridge.service import serve

    return run_until_signal(serve(config.bridge, config.mqtt, config.store, config.data_dir))
