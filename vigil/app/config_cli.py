"""``vigil config check FILE``: validate a vigil.yaml and print the effective configuration."""

from __future__ import annotations

import argparse
import sys

from vigil.app.config import ConfigError, dump_config, load_config
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_OK

DESCRIPTION = """\
Check a configuration file. On success, print the effective configuration (defaults filled in,
secrets masked) and exit 0; otherwise print every problem with its file, line and key, and exit 3."""
EPILOG = """\
example:
  vigil config check vigil.yaml
  VIGIL_MQTT_PASSWORD=secret vigil config check /etc/vigil/vigil.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate FILE and print the effective configuration",
                           description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("file", metavar="FILE", help="the vigil.yaml to check")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        n = len(exc.issues)
        print(f"{args.file}: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
        return EXIT_CONFIG
    print(f"# {args.file}: OK. Effective configuration (secrets masked):")
    print(dump_config(config), end="")
    return EXIT_OK
