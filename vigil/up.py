"""``vigil up``: the bridge, the rule engine and the dashboard in one process, on one event loop.

With no broker answering at the configured address, an embedded one (amqtt, MQTT 3.1.1) is
started there; with no store configured, a SQLite file in the data directory. ``--demo`` adds
three simulated devices and example rules, and leaves the freezer's door open after a while.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Optional

from .config import VigilConfig
from .runtime import add_common_arguments, config_from_args, run_until_signal, setup_logging

DESCRIPTION = """\
Run Vigil in one process: the bridge (readings into the store), the rule engine (alerts and
notifications) and the dashboard. It uses the MQTT broker at the configured address when one
answers there, and otherwise starts an embedded one; the store is a SQLite file under the data
directory unless you name another. --demo adds simulated devices and example rules, so that an
alert fires within about a minute."""

EPILOG = """\
examples:
  vigil up --demo                                   try it: simulated devices, an alert within a minute
  vigil up --demo --notify 'ntfy://ntfy.sh/my-topic'  ... and the alert on your phone (any apprise URL)
  vigil up -c vigil.yaml                            your own configuration, rules and devices
  vigil up --broker mqtt://192.168.1.10:1883 --listen 0.0.0.0:8080

Stop it with Ctrl-C.
"""

log = logging.getLogger("vigil.up")

DEMO_DEVICES = ("freezer", "greenhouse", "server-room")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="where the dashboard listens (default 127.0.0.1:8080)")
    parser.add_argument("--data-dir", metavar="DIR", help="state, embedded store and demo files (default vigil-data)")
    parser.add_argument("--demo", action="store_true", help="add simulated devices and example rules")
    parser.add_argument("--notify", metavar="APPRISE_URL", action="append", default=[],
                        help="with --demo: also send the demo's alerts here (e.g. ntfy://ntfy.sh/TOPIC); repeatable")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    config = config_from_args(args, {
        "dashboard.listen": (args.listen, "--listen"),
        "data_dir": (args.data_dir, "--data-dir"),
    })
    if args.notify and not args.demo:
        print("--notify goes with --demo; for your own rules, name receivers in the rules file "
              "(docs/notifications.md)", file=sys.stderr)
        return 2
    return run_until_signal(up(config, demo=args.demo, notify=args.notify))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@asynccontextmanager
async def _broker(config: VigilConfig, say: Callable[[str], None]) -> AsyncIterator[VigilConfig]:
    """The configured broker when it answers; otherwise an embedded amqtt broker on that address."""
    b = config.mqtt.broker()
    if await asyncio.to_thread(_answers, b.host, b.port):
        say(f"MQTT broker: using the one that answers at {b}")
        yield config
        return
    if b.tls or b.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        raise SystemExit(f"vigil up: no MQTT broker answers at {b}; start it, or run without --broker to get an "
                         "embedded one on 127.0.0.1:1883")
    from amqtt.broker import Broker

    amqtt_config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{b.host}:{b.port}", "max_connections": 200}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    }
    for noisy in ("amqtt", "transitions", "passlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
        logging.getLogger(noisy).addFilter(_one_line)
    broker = Broker(amqtt_config)
    await broker.start()
    say(f"MQTT broker: none answered at {b}, so an embedded one runs there for now (MQTT 3.1.1; it gives "
        "up on a message nobody acknowledges within 5 s, so for anything beyond a demo use Mosquitto: "
        "docs/production.md)")
    try:
        yield config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"protocol": "3.1.1"})})
    finally:
        await broker.shutdown()


def _one_line(record: logging.LogRecord) -> bool:
    """The embedded broker's errors as one line each, without its tracebacks."""
    if record.exc_info and record.exc_info[1] is not None:
        record.msg = f"embedded broker: {record.exc_info[1]}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
    return True


def _demo_rules(data_dir: Path, receivers: dict[str, list[str]]) -> Path:
    """Write the demo rules, every rule notifying ``receivers``, into the data directory."""
    from importlib import resources

    import yaml

    folder = data_dir / "demo-rules"
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(resources.files("vigil").joinpath("demo/rules.yaml").read_text("utf-8"))
    declared = data.get("receivers") or {}  # the demo file's receivers give their options (fallback:)
    data["receivers"] = {name: {**declared[name], "urls": urls} if isinstance(declared.get(name), dict) else urls
                         for name, urls in receivers.items()}
    data["grouping"] = {"group_wait": "1s"}
    for rule in data["rules"]:
        rule["notify"] = list(receivers)
    text = "# written by vigil up --demo (from vigil/demo/rules.yaml)\n"
    (folder / "demo.yaml").write_text(text + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    return folder


async def _console_receiver(say: Callable[[str], None], started: asyncio.Future[int]) -> None:
    """A local HTTP endpoint for apprise's json:// that prints each notification it is sent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = min(int(value.strip() or 0), 1_000_000)
            body = json.loads(await reader.readexactly(length)) if length else {}
            say(f"NOTIFICATION (what your phone would show): {body.get('title', '')}\n  {body.get('message', '')}")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (ValueError, TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    started.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


@asynccontextmanager
async def _demo_agents(config: VigilConfig, data_dir: Path) -> AsyncIterator[None]:
    """Three simulated devices publishing every 2 s; the freezer's door opens after 15 s."""
    from edge.agent import EdgeAgent
    from edge.config import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
    from edge.sensors.simulated import Fault

    b = config.mqtt.broker()
    mqtt = MqttConfig(url=f"mqtt://{b.host}:{b.port}", username=b.username, password=b.password,
                      root=config.mqtt.root, protocol=config.mqtt.protocol)
    devices = {
        "freezer": simulated_sensor("t0", base=-18.5, amplitude=0.3, noise=0.1,
                                    faults=[Fault("rise", at=15, rate=8.0)]),
        "greenhouse": simulated_sensor("t0", base=14.0, amplitude=6.0, noise=0.2),
        "server-room": simulated_sensor("t0", base=22.0, amplitude=1.0, noise=0.1),
    }
    agents = []
    for device, sensor in devices.items():
        buffer = BufferConfig(path=str(data_dir / "demo-edge" / device), sync="off")
        agents.append(EdgeAgent(EdgeConfig(device=device, sensors=(sensor,), mqtt=mqtt, buffer=buffer,
                                           interval=2.0, labels={"site": "demo"})))
    for agent in agents:
        agent.start()
    try:
        yield
    finally:
        # stop() sends what is queued and says offline (a few seconds): all three at once, off the loop
        await asyncio.gather(*(asyncio.to_thread(agent.stop) for agent in agents))


async def _announce_alerts(config: VigilConfig, say: Callable[[str], None]) -> None:
    """Print every alert state change on the console."""
    from .mqtt import build_client

    topics = config.mqtt.topics
    async with build_client(config.mqtt, f"vigil-up-console-{id(config) % 100000}") as client:
        await client.subscribe(topics.all_alerts, qos=1)
        async for message in client.messages:
            try:
                t = json.loads(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
            except (ValueError, TypeError):
                continue
            if not isinstance(t, dict) or t.get("state") in (None, "ok"):
                continue
            say(f"ALERT {str(t.get('state')).upper()} [{t.get('severity')}] {t.get('rule')} "
                f"{t.get('series')}: {t.get('message')}")


async def up(config: VigilConfig, *, demo: bool = False, notify: Optional[list[str]] = None,
             say: Callable[[str], None] = print) -> None:
    """Run everything until cancelled."""
    from alerting.service import serve as serve_alerting
    from broker_bridge.service import serve as serve_bridge
    from broker_bridge.stores import open_store
    from dashboard.app import serve as serve_dashboard
    from dashboard.auth import ensure_admin

    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    updates: dict[str, Any] = {}
    console_port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    console = asyncio.create_task(_console_receiver(say, console_port), name="up-console-receiver") if demo else None
    if demo:
        receivers = {"console": [f"json://127.0.0.1:{await console_port}/notify"]}
        if notify:
            receivers["you"] = list(notify)
        rules = _demo_rules(data_dir, receivers)
        updates["alerting"] = config.alerting.model_copy(update={"rules": str(rules),
                                                                 "state": str(data_dir / "demo-alerts.db")})
    elif not Path(config.alerting.rules).exists():
        say(f"Rules: none yet at {config.alerting.rules!r}; write some (docs/rules.md), then restart")
    dashboard_settings, password = ensure_admin(config.dashboard, data_dir)
    updates["dashboard"] = dashboard_settings.model_copy(update={"rules": dashboard_settings.rules
                                                                 or (updates.get("alerting") or config.alerting).rules})
    config = config.model_copy(update=updates)
    store = open_store(config.store.store_url(), retention=config.store.retention)
    say(f"Store: {store.name}")
    try:
        async with _broker(config, say) as config:
            ready = {name: asyncio.Event() for name in ("bridge", "alerting", "dashboard")}
            async with asyncio.TaskGroup() as tg:
                tg.create_task(serve_bridge(config, store=store, ready=ready["bridge"]), name="up-bridge")
                tg.create_task(serve_alerting(config, store=store, ready=ready["alerting"]), name="up-alerting")
                tg.create_task(serve_dashboard(config, store=store, ready=ready["dashboard"]), name="up-dashboard")
                tg.create_task(_announce_alerts(config, say), name="up-console")
                await asyncio.gather(*(e.wait() for e in ready.values()))
                host, _, port = config.dashboard.listen.rpartition(":")
                shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
                say(f"Dashboard: http://{shown}:{port}/")
                if password:
                    say(f"  log in as 'admin' with the password {password}  (shown once; its hash is kept in "
                        f"{data_dir}/dashboard-admin.hash)")
                else:
                    say("  log in with a user from the configuration (or the admin password shown the first time)")
                if demo:
                    say("Demo: a freezer, a greenhouse and a server room publish every 2 s; in about a minute the "
                        "freezer's door is left open and 'freezer-warm' fires. Ctrl-C stops everything.")
                    async with _demo_agents(config, data_dir):
                        await asyncio.Event().wait()
                else:
                    b = config.mqtt.broker()
                    say("Waiting for readings. Start an agent on a device with:\n"
                        f"  vigil edge --broker mqtt://{b.host}:{b.port} --device pi-1 --simulate t0 --interval 5")
    finally:
        store.close()
        if console is not None:
            console.cancel()
            await asyncio.gather(console, return_exceptions=True)
