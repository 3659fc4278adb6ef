"""``vigil dashboard``: serve the web dashboard and the HTTP API."""

from __future__ import annotations

import argparse
import getpass
import sys

from vigil.app.runtime import add_common_arguments, check_at_start, config_from_args, run_until_signal, setup_logging
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

DESCRIPTION = """\
Serve the web dashboard (live values, history, alerts, rules, silences) and the HTTP API under
/api/v1, including POST /api/v1/readings for things that cannot speak MQTT.

Log in with a user from the dashboard.users section of vigil.yaml. With no admin user configured,
one named 'admin' is made and its password printed once (its hash is kept in the data directory)."""

EPILOG = """\
examples:
  vigil dashboard --broker mqtt://127.0.0.1:1883 --store sqlite:///var/lib/vigil/vigil.db --listen 127.0.0.1:8080
  vigil dashboard -c /etc/vigil/vigil.yaml
  vigil dashboard --hash-password          make a password hash for dashboard.users (reads the password)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:8080)")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password (twice, or once from a pipe) and print its hash, then exit")


def _hash_password() -> int:
    from dashboard.passwords import hash_password

    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            print("vigil dashboard: the two passwords differ", file=sys.stderr)
            return EXIT_FAILED
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 8:
        print("vigil dashboard: use a password of at least 8 characters", file=sys.stderr)
        return EXIT_FAILED
    print(hash_password(first))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        return _hash_password()
    setup_logging(args.verbose)
    config = config_from_args(args, {"dashboard.listen": (args.listen, "--listen")})
    from vigil.app.preflight import check_port

    busy = check_port(config.dashboard.listen, "the dashboard", "--listen")
    if busy is not None:
        print(f"vigil dashboard: {busy}", file=sys.stderr)
        return EXIT_FAILED
    if not check_at_start(config, "dashboard", f"{config.dashboard.client_id}-check", persistent=False):
        return EXIT_CONFIG
    from dashboard.auth import ensure_admin
    from vigil.app.dashboard_wiring import serve_dashboard

    settings, password = ensure_admin(config.dashboard, config.data_dir)
    if password:
        print(f"vigil dashboard: made user 'admin' with password {password}  (shown once; "
              f"its hash is in {config.data_dir}/dashboard-admin.hash)", flush=True)
    config = config.model_copy(update={"dashboard": settings})
    try:
        return run_until_signal(serve_dashboard(config))
    except OSError as exc:
        print(f"vigil dashboard: cannot serve on {config.dashboard.listen}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
