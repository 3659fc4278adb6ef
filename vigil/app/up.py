"""``vigil up``: the bridge, the rule engine and the dashboard in one process, on one event loop.

With no broker answering at the configured address, a managed Mosquitto (vigil/app/broker.py) runs
there; with no store configured, a SQLite file in the data directory, which holds everything
``vigil up`` writes. ``--demo`` adds three simulated devices and example rules, and leaves the
freezer's door open after a while. Files a user may edit (the rules) are written once, never again.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any, Callable, NoReturn, Optional

from vigil.app.config import VigilConfig
from vigil.app.runtime import add_common_arguments, config_from_args, run_until_signal, setup_logging
from vigil.core.errors import VigilError
from vigil.core.exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_USAGE

DESCRIPTION = """\
Run Vigil in one process: the bridge (readings into the store), the rule engine (alerts and
notifications) and the dashboard. It uses the MQTT broker at the configured address when one
answers there, and otherwise runs Mosquitto there itself (loopback only, its data in the data
directory). Everything Vigil writes goes into the data directory: the store (a SQLite file unless
you name another), alert state, the rules it writes for you (once: your edits are kept) and the
broker's data. --demo adds simulated devices and example rules, so that an alert fires within
about a minute."""

EPILOG = """\
examples:
  vigil up --demo                                   try it: simulated devices, an alert within a minute
  vigil up --notify 'ntfy://ntfy.sh/MY-SECRET-TOPIC?priority=high'
                                                    alerts on your phone (any apprise URL; then check it
                                                    with: vigil notify test vigil-data/rules)
  vigil up -c vigil.yaml                            your own settings and rules (vigil init writes them)
  vigil up --broker mqtt://192.168.1.10:1883 --listen 0.0.0.0:8080

Stop it with Ctrl-C.
"""

log = logging.getLogger("vigil.app.up")

DEMO_DEVICES = ("freezer", "greenhouse", "server-room")
PHONE = "phone"  # the receiver --notify fills


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="where the dashboard listens (default 127.0.0.1:8080)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="everything Vigil writes: store, alert state, its rules, broker data (default vigil-data)")
    parser.add_argument("--demo", action="store_true", help="add simulated devices and example rules")
    parser.add_argument("--notify", metavar="APPRISE_URL", action="append", default=[],
                        help="send alerts here too, e.g. 'ntfy://ntfy.sh/TOPIC?priority=high' (repeatable; for the "
                        "rules vigil up writes: your own rules name their receivers)")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    config = config_from_args(args, {
        "dashboard.listen": (args.listen, "--listen"),
        "data_dir": (args.data_dir, "--data-dir"),
    })
    problem = startup_problem(config)
    if problem:
        print(f"vigil up: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if args.notify and not (args.demo or _writes_rules(config)):
        print(f"vigil up: --notify is for the rules vigil up writes; your rules in {config.alerting.rules} name "
              f"their own receivers: put the URL under receivers: there (docs/notifications.md)", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _one_instance(Path(config.data_dir)):
            return run_until_signal(up(config, demo=args.demo, notify=args.notify))
    except _Busy as exc:
        print(f"vigil up: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except _Unusable as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG


def startup_problem(config: VigilConfig) -> Optional[str]:
    """The first port that cannot be listened on, as one line naming the flag; before anything is written."""
    from vigil.app.preflight import check_port

    finding = check_port(config.dashboard.listen, "the dashboard", "--listen")
    if finding is None and config.bridge.metrics_listen:
        finding = check_port(config.bridge.metrics_listen, "the bridge's metrics", "bridge.metrics_listen in")
    if finding is None and config.alerting.metrics_listen:
        finding = check_port(config.alerting.metrics_listen, "the rule engine's metrics", "alerting.metrics_listen in")
    return str(finding) if finding else None


class _Busy(VigilError):
    pass


@contextmanager
def _one_instance(data_dir: Path) -> Iterator[None]:
    """Hold <data-dir>/vigil-up.lock: a second vigil up on the same data directory is refused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock: IO[str] = (data_dir / "vigil-up.lock").open("a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            raise _Busy(f"another vigil up (pid {pid}) is running with the data directory {data_dir}; stop it, "
                        "or give this one its own --data-dir and --listen") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        lock.close()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class _Unusable(VigilError):
    """The configuration cannot be used (a broker that refuses our credentials, invalid rules): nothing
    started; ``run`` says why in one line and exits with EXIT_CONFIG."""


def _refuse(message: str) -> NoReturn:
    raise _Unusable(message)


@asynccontextmanager
async def _broker(config: VigilConfig, say: Callable[[str], None]) -> AsyncIterator[None]:
    """The configured broker when it answers (and lets us in); otherwise a managed Mosquitto on that
    (loopback) address, started again should it stop."""
    from vigil.app.broker import LOOPBACK, BrokerError, ManagedMosquitto
    from vigil.app.preflight import check_broker
    from vigil.core.mqtt import installation_client_id

    brokers = config.mqtt.brokers()
    if len(brokers) > 1:  # a list (failover): used as it is, never replaced by a managed Mosquitto
        finding = await check_broker(config.mqtt, installation_client_id("up-check", config.data_dir),
                                     persistent=False)
        if finding is not None:
            _refuse(f"vigil up: {finding}; start one of them, or name the brokers that run with --broker")
        say(f"MQTT brokers: {', '.join(map(str, brokers))}, in this order on a failure (each with its own "
            "queue and persistence settings; docs/scaling.md, Several brokers)")
        yield
        return
    b = brokers[0]
    if await asyncio.to_thread(_answers, b.host, b.port):
        finding = await check_broker(config.mqtt, installation_client_id("up-check", config.data_dir),
                                     persistent=False)
        if finding is not None and finding.fatal:
            _refuse(f"vigil up: {finding}")
        say(f"MQTT broker: using the one that answers at {b} (with its own queue and persistence settings; "
            "docs/one-box.md)")
        yield
        return
    if b.tls or b.host not in LOOPBACK:
        raise SystemExit(f"vigil up: no MQTT broker answers at {b}; start it, or leave out --broker to have "
                         "vigil up run Mosquitto on 127.0.0.1:1883")
    broker = ManagedMosquitto(Path(config.data_dir) / "mosquitto", b.port, host=b.host)
    try:
        broker.spawn()  # on the loop's thread: Linux stops the broker when that thread ends
        await asyncio.to_thread(broker.wait_ready, lambda: _answers(b.host, b.port))
    except BrokerError as exc:
        raise SystemExit(f"vigil up: {exc}") from None
    say(f"MQTT broker: none answered at {b}, so Mosquitto runs there (MQTT 5, loopback only; its data and log in "
        f"{broker.data})")
    keeper = asyncio.create_task(_keep_up(broker, lambda: _answers(b.host, b.port), say), name="up-broker-keeper")
    try:
        yield
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.to_thread(broker.stop)


async def _keep_up(broker: Any, answers: Callable[[], bool], say: Callable[[str], None]) -> None:
    """Start the managed Mosquitto again when it stops on its own (a crash, a kill)."""
    from vigil.app.broker import BrokerError

    while True:
        await asyncio.sleep(1)
        proc = broker.proc
        if proc is None or proc.poll() is None:
            continue
        say(f"MQTT broker: Mosquitto stopped (exit status {proc.returncode}; {broker.last_log_line()}); "
            "starting it again")
        try:
            broker.spawn()
            await asyncio.to_thread(broker.wait_ready, answers)
        except BrokerError as exc:
            say(f"MQTT broker: {exc}; trying again in 10 s")
            await asyncio.sleep(10)
        else:
            say("MQTT broker: Mosquitto is back")


def _writes_rules(config: VigilConfig) -> bool:
    """vigil up writes its own rules when the configuration names none and ./rules does not exist."""
    return "rules" not in config.alerting.model_fields_set and not Path(config.alerting.rules).exists()


def _own_rules(data_dir: Path, demo: bool, receivers: dict[str, list[str]], say: Callable[[str], None]) -> Path:
    """The rules folder vigil up writes in the data directory: the rules once (kept from then on, with
    the user's edits), and receivers.yaml, which renders this start's receivers, at each start."""
    from importlib import resources

    from vigil.app.init import receiver_line, rules_text

    folder = data_dir / ("demo-rules" if demo else "rules")
    folder.mkdir(parents=True, exist_ok=True)
    rules = folder / ("demo.yaml" if demo else "rules.yaml")
    if rules.exists():
        say(f"Rules: {rules} (kept as it is: edit it, or delete it to have it written again)")
    else:
        if demo:
            text = resources.files("vigil.app").joinpath("demo/rules.yaml").read_text("utf-8")
        else:
            text = rules_text("# Receivers: receivers.yaml beside this file holds --notify's (written at each start);\n"
                              "# name your own here, and a rule's notify: [NAME] sends it there.", notify=False)
        with rules.open("x", encoding="utf-8") as f:  # "x": never replace a file made meanwhile
            f.write(text)
        say(f"Rules: wrote {rules}; edit it, it is yours (docs/rules.md)")
    present = {name: urls for name, urls in receivers.items() if urls}
    lines = ["# Written by vigil up at each start from --notify" + (" and the demo's console" if demo else "")
             + ": edits here are lost.", "# Receivers of your own go into another file of this folder."]
    if present:
        entries = [receiver_line(n, urls) for n, urls in present.items()]
        if demo and PHONE in present:
            # a second channel: what cannot reach the phone for 30 s is printed on the console instead
            phone = receiver_line(PHONE, present[PHONE]).replace(": [", ":\n    urls: [", 1)
            entries[list(present).index(PHONE)] = phone + "\n    fallback: [console]\n    after: 30s"
        lines += ["receivers:", *entries,
                  "routes:  # alerts of rules without notify: go to all of them",
                  f"  - receivers: [{', '.join(present)}]"]
    else:
        lines.append("receivers: {}")
    (folder / "receivers.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def _check_rules(path: str) -> None:
    """The rules load, or every problem is printed with what to do, before anything starts."""
    from alerting.rules import RulesError, load_rules_path

    if not Path(path).exists():
        return  # the rule engine runs with none and says so; rules written later are reloaded
    try:
        load_rules_path(path)
    except RulesError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        _refuse(f"vigil up: fix the rules above (vigil rules check {path}), then start again")


def _client_ids(config: VigilConfig) -> VigilConfig:
    """Each part's client id from this installation, unless the configuration names one: a second
    vigil up (another data directory, another machine) on the same broker never takes this one's session."""
    from vigil.core.mqtt import installation_client_id

    updates: dict[str, Any] = {}
    for part in ("bridge", "alerting", "dashboard"):
        settings = getattr(config, part)
        if "client_id" not in settings.model_fields_set:
            updates[part] = settings.model_copy(update={"client_id": installation_client_id(part, config.data_dir)})
    return config.model_copy(update=updates)


async def _console_receiver(say: Callable[[str], None], started: asyncio.Future[int]) -> None:
    """A local HTTP endpoint for apprise's json:// that prints each notification it is sent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = 0
            while True:
                async with asyncio.timeout(10):  # a header line (asyncio.timeout: 3.11's wait_for can drop a cancel)
                    line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
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
    url = ",".join(f"mqtt://{o.address}" for o in config.mqtt.brokers())  # every broker: they fail over too
    mqtt = MqttConfig(url=url, username=b.username, password=b.password,
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
    """Print every alert state change on the console; through broker restarts (retained alerts
    already shown are not shown again)."""
    import aiomqtt

    from vigil.core.backoff import Rotation
    from vigil.core.mqtt import build_client, installation_client_id

    topics = config.mqtt.topics
    shown: dict[str, bytes] = {}
    brokers = config.mqtt.brokers()
    rotation = Rotation(len(brokers), 10.0)
    while True:
        try:
            async with build_client(config.mqtt, installation_client_id("up-console", config.data_dir),
                                    broker=brokers[rotation.index]) as client:
                rotation.connected()
                await client.subscribe(topics.all_alerts, qos=1)
                async for message in client.messages:
                    payload = bytes(message.payload)  # type: ignore[arg-type,unused-ignore]
                    if shown.get(str(message.topic)) == payload:
                        continue
                    shown[str(message.topic)] = payload
                    _announce(payload, say)
        except aiomqtt.MqttError as exc:
            log.debug("console lost the broker %s (%s)", brokers[rotation.index], exc)
            await asyncio.sleep(rotation.failed())


def _announce(payload: bytes, say: Callable[[str], None]) -> None:
    try:
        t = json.loads(payload)
    except (ValueError, TypeError):
        return
    if not isinstance(t, dict) or t.get("state") in (None, "ok"):
        return
    say(f"ALERT {str(t.get('state')).upper()} [{t.get('severity')}] {t.get('rule')} "
        f"{t.get('series')}: {t.get('message')}")


async def up(config: VigilConfig, *, demo: bool = False, notify: Optional[list[str]] = None,
             say: Callable[[str], None] = print) -> None:
    """Run everything until cancelled."""
    from alerting.notify.config import mask_apprise_url
    from broker_bridge.service import serve as serve_bridge
    from dashboard.auth import ensure_admin
    from vigil.app.commands.alerting import serve_alerting
    from vigil.app.dashboard_wiring import serve_dashboard
    from vigil.core.stores import open_store

    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = _client_ids(config)
    updates: dict[str, Any] = {}
    console_port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    console = asyncio.create_task(_console_receiver(say, console_port), name="up-console-receiver") if demo else None
    try:
        if demo or _writes_rules(config):
            receivers = {"console": [f"json://127.0.0.1:{await console_port}/notify"]} if demo else {}
            receivers[PHONE] = list(notify or [])
            rules = _own_rules(data_dir, demo, receivers, say)
            state = {"state": str(data_dir / "demo-alerts.db")} if demo else {}
            updates["alerting"] = config.alerting.model_copy(update={"rules": str(rules), **state})
            say(f"Notifications: to {', '.join(mask_apprise_url(u) for u in notify or [])}" if notify else
                "Notifications: none to your phone yet; start with --notify 'ntfy://ntfy.sh/YOUR-TOPIC?priority=high' "
                "(docs/one-box.md)")
            if notify:
                say(f"  check it now, with vigil up running or not: vigil notify test {rules} --receiver {PHONE}")
        _check_rules((updates.get("alerting") or config.alerting).rules)
        dashboard_settings, password = ensure_admin(config.dashboard, data_dir)
        updates["dashboard"] = dashboard_settings.model_copy(
            update={"rules": dashboard_settings.rules or (updates.get("alerting") or config.alerting).rules})
        config = config.model_copy(update=updates)
        store = open_store(config.store.store_url(), retention=config.store.retention)
        say(f"Store: {store.name}")
        try:
            async with _broker(config, say):
                await _serve(config, store, password, demo, say,
                             serve_bridge=serve_bridge, serve_alerting=serve_alerting, serve_dashboard=serve_dashboard)
        finally:
            store.close()
    finally:
        if console is not None:
            console.cancel()
            await asyncio.gather(console, return_exceptions=True)


async def _serve(config: VigilConfig, store: Any, password: Optional[str], demo: bool, say: Callable[[str], None],
                 **serve: Callable[..., Any]) -> None:
    data_dir = Path(config.data_dir)
    ready = {name: asyncio.Event() for name in ("bridge", "alerting", "dashboard")}
    async with asyncio.TaskGroup() as tg:
        tg.create_task(serve["serve_bridge"](config.bridge, config.mqtt, store, data_dir, ready=ready["bridge"]),
                       name="up-bridge")
        tg.create_task(serve["serve_alerting"](config, store=store, ready=ready["alerting"]), name="up-alerting")
        tg.create_task(serve["serve_dashboard"](config, store=store, ready=ready["dashboard"]), name="up-dashboard")
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
            say("Waiting for readings. Start an agent (here, or on a device that reaches this broker) with:\n"
                f"  {edge_command(config)}")


def edge_command(config: VigilConfig) -> str:
    """The ``vigil edge`` command that reaches this broker, as printed for the user to run."""
    brokers = config.mqtt.brokers()
    scheme = "mqtts" if brokers[0].tls else "mqtt"
    user = f"{brokers[0].username}@" if brokers[0].username else ""
    env = "VIGIL_MQTT_PASSWORD=... " if brokers[0].password else ""
    urls = ",".join(f"{scheme}://{user}{b.address}" for b in brokers)
    return f"{env}vigil edge --broker {urls} --device pi-1 --simulate t0 --interval 5"
