"""What every server command shares: common flags, configuration from flags, logging, running."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any, Optional

from vigil.app.config import ConfigError, VigilConfig, load_config
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_OK

__all__ = [
    "add_common_arguments",
    "check_at_start",
    "config_from_args",
    "run_until_signal",
    "setup_logging",
    "under_data_dir",
]


def add_common_arguments(parser: argparse.ArgumentParser, *, store: bool = True) -> None:
    """``-c``, ``--broker``, ``--store`` (optional) and ``-v``."""
    parser.add_argument("-c", "--config", metavar="FILE", help="vigil.yaml to read (flags override it)")
    parser.add_argument("--broker", metavar="URL[,URL...]",
                        help="MQTT broker, mqtt://[user[:pass]@]host[:port] or mqtts://...; several, comma-separated "
                             "(mqtt://a:1883,mqtt://b:1883), are tried in turn when one fails (at most 16)")
    if store:
        parser.add_argument("--store", metavar="URL",
                            help="sqlite:///path.db, influxdb1://host:8086/DB or influxdb2://host:8086/BUCKET?org=ORG")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")


def config_from_args(args: argparse.Namespace, extra: Optional[dict[str, tuple[Any, str]]] = None) -> VigilConfig:
    """The configuration from ``-c`` and flags; on problems, print them and exit with status 3."""
    overrides: dict[str, tuple[Any, str]] = {
        "mqtt.url": (getattr(args, "broker", None), "--broker"),
        "store.url": (getattr(args, "store", None), "--store"),
    }
    overrides.update(extra or {})
    try:
        return under_data_dir(load_config(getattr(args, "config", None), overrides=overrides))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print("fix the configuration above, then start again (vigil config check FILE checks a file)", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def under_data_dir(config: VigilConfig) -> VigilConfig:
    """The embedded store and the alert state in ``data_dir``, unless the configuration names them."""
    data = config.data_dir.rstrip("/") or "/"
    updates: dict[str, Any] = {}
    if "url" not in config.store.model_fields_set:
        updates["store"] = config.store.model_copy(update={"url": f"sqlite:///{data}/vigil.db"})
    if "state" not in config.alerting.model_fields_set:
        updates["alerting"] = config.alerting.model_copy(update={"state": f"{data}/alerts.db"})
    return config.model_copy(update=updates)


def check_at_start(config: VigilConfig, part: str, client_id: str, *, persistent: bool = True,
                   store: bool = True) -> bool:
    """The broker (and the store) answer as configured; each problem in one line on stderr.
    False when one cannot be fixed by waiting (the caller exits with status 3)."""
    from vigil.app.preflight import check_broker, check_store

    findings = [asyncio.run(check_broker(config.mqtt, client_id, persistent=persistent))]
    if store:
        findings.append(check_store(config.store))
    for finding in findings:
        if finding is not None:
            print(f"vigil {part}: {finding}", file=sys.stderr, flush=True)
    return not any(f is not None and f.fatal for f in findings)


def setup_logging(verbose: int = 0) -> None:
    """One line per event on stderr: time, level, part, message."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr)
    if verbose < 2:
        for noisy in ("httpx", "uvicorn.access", "apprise", "urllib3", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run_until_signal(main: Coroutine[Any, Any, None]) -> int:
    """Run ``main`` until it ends or SIGINT/SIGTERM arrives, then cancel it cleanly; exit status."""

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logging.getLogger("vigil").info("stopped")

    asyncio.run(runner())
    return EXIT_OK
