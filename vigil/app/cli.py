"""The ``vigil`` command line: one entry point, a subcommand per part.

Each subcommand lives in its own module (``edge.cli``, ``vigil.app.commands.bridge``,
``vigil.app.commands.alerting``, ``vigil.app.commands.dashboard``, ``vigil.app.up``, ...), imported only
when that subcommand runs, so
``vigil edge`` works on a device where only the ``edge`` extra is installed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Callable, Optional

from vigil.core.exitcodes import EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["main"]

# name -> (module, one-line help). The module has ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "init": ("vigil.app.init", "write a commented vigil.yaml, example rules with a test, and an edge.yaml to edit"),
    "up": ("vigil.app.up", "run the bridge, the rule engine and the dashboard in one process"),
    "edge": ("edge.cli", "run the edge agent on a device: read sensors, publish readings"),
    "bridge": ("vigil.app.commands.bridge", "normalize readings from MQTT, store them, republish events"),
    "alerting": ("vigil.app.commands.alerting", "evaluate alert rules on events and send notifications"),
    "dashboard": ("vigil.app.commands.dashboard", "serve the web dashboard and the HTTP API"),
    "config": ("vigil.app.config_cli", "check a vigil.yaml and print the effective configuration"),
    "rules": ("alerting.rules_cli", "check, unit-test and backtest alert rules"),
    "notify": ("alerting.notify.cli", "try receivers, show notification delivery state"),
    "status": ("vigil.app.status", "the health of every part in one screen, with what to do"),
    "calibration": ("vigil.app.commands.calibration", "a series' calibration: history, set, clear"),
    "report": ("vigil.app.commands.report", "a temperature log (PDF, CSV) of some series, and verify one"),
}

EPILOG = """\
examples:
  vigil up --demo                     everything in one process, with simulated sensors
  vigil init my-site                  a commented vigil.yaml, rules and edge.yaml to start from
  vigil edge --broker mqtt://127.0.0.1:1883 --device pi-1 --simulate t0 --interval 1
  vigil bridge --broker mqtt://127.0.0.1:1883 --store influxdb1://127.0.0.1:8086/vigil
  vigil bridge --broker mqtt://broker-a:1883,mqtt://broker-b:1883 ...   two brokers: the second when the first fails
  vigil config check vigil.yaml
  vigil status -c vigil.yaml          is every part healthy? (exit status 1 if not)

Run 'vigil COMMAND --help' for what a command does and its options.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        # argparse would import shutil (and with it bz2 and lzma) for the terminal's width, even to
        # add an argument: memory the edge agent carries all its life (docs/edge.md, Footprint).
        if width is None:
            columns = os.environ.get("COLUMNS", "")
            if columns.isdigit():
                width = int(columns)
            else:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
                except (OSError, ValueError):
                    width = 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    from vigil import __version__

    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Vigil watches sensors over MQTT, stores their readings and alerts people when "
        "something goes wrong.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    wanted = _wanted_command(sys.argv[1:])
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        # Import only the module of the command being run, so that ``vigil --help`` is quick
        # and a device with only the edge extra installed can run ``vigil edge``.
        if wanted != name:
            sub.add_parser(name, help=help_text, formatter_class=_Formatter)
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if wanted == name:
                raise SystemExit(
                    f"vigil {name}: this part is not installed here ({exc}). "
                    f"Install it with: pip install 'vigil[{'edge' if name == 'edge' else 'server'}]'"
                ) from exc
            sub.add_parser(name, help=f"{help_text} (not installed here)")
            continue
        p = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", help_text),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=_Formatter,
        )
        module.add_arguments(p)
        runners[name] = module.run
    return parser, runners


def _wanted_command(argv: Sequence[str]) -> Optional[str]:
    for arg in argv:
        if arg in SUBCOMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``vigil`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "vigil", *args_list]
    try:
        parser, runners = build_parser()
    finally:
        sys.argv = saved
    args, stray = parser.parse_known_args(args_list)
    if stray:
        # a command whose words may sit among its options (`vigil report verify -c vigil.yaml FILE`) takes
        # them, in order; any other stray argument is the usual usage error
        if isinstance(getattr(args, "words", None), list) and not any(s.startswith("-") for s in stray):
            args.words += stray
        else:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(runners[args.command](args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
