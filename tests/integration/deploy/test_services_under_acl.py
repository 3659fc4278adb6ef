"""The three Vigil services, started as the systemd units start them, under the shipped ACL.

Each runs as a real `vigil` process with the unit's own command line (the paths moved to a test
directory) and logs in as its own MQTT user, with its password from the environment as the
unit's env file gives it. A reading from device pi-1 and one through the dashboard's HTTP
ingest must be stored, republished as events and turned into a firing alert: proof that each
service is granted what it uses, under the production Mosquitto configuration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest
import yaml

from alerting.partition import owns
from tests.support.mqttclient import Session
from tests.support.procs import VIGIL, VigilProcess
from tests.support.prodbroker import PASSWORDS, ProductionBroker
from tests.support.services import free_port, wait_until
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SYSTEMD = ROOT / "deploy" / "systemd"
TOKEN = "deploy-test-ingest-token-0123456789"
ADMIN_TOKEN = "deploy-test-admin-token-0123456789"

RULES = """\
rules:
  - name: warm
    match: {metric: temperature}
    above: 5
    severity: critical
    message: "{{ device }} is at {{ value }} °C"
"""


def unit_command(service: str, config: Path, broker: str, *, unit: str = "",
                 values: Optional[dict[str, str]] = None) -> list[str]:
    """ExecStart of deploy/systemd/vigil-<service>.service (or ``unit``) with this machine's paths.

    ``values`` replaces what systemd would: a template's %i, variables of its env files, paths.
    """
    text = (SYSTEMD / (unit or f"vigil-{service}.service")).read_text().replace("\\\n", " ")
    match = re.search(r"^ExecStart=(.+)$", text, flags=re.MULTILINE)
    assert match
    line = (match.group(1).replace("/opt/vigil/.venv/bin/vigil", VIGIL)
            .replace("/etc/vigil/vigil.yaml", str(config)).replace("${VIGIL_BROKER}", broker))
    for name, value in (values or {}).items():
        line = line.replace(name, value)
    return line.split()


def write_config(tmp_path: Path, broker: ProductionBroker, dashboard_port: int) -> Path:
    """deploy/systemd/vigil.yaml.example with a SQLite store and every path under ``tmp_path``."""
    data = yaml.safe_load((SYSTEMD / "vigil.yaml.example").read_text())
    data["data_dir"] = str(tmp_path / "data")
    data["mqtt"]["url"] = f"mqtt://127.0.0.1:{broker.plain_port}"
    data["mqtt"]["ca_file"] = str(broker.ca_file)  # as vigil.yaml.example says for another machine
    data["store"] = {"url": f"sqlite:///{tmp_path}/vigil.db"}
    # A rules folder, as /etc/vigil/rules: the dashboard's Rules page writes into it.
    data["alerting"].update(rules=str(tmp_path / "rules"), state=str(tmp_path / "data" / "alerts.db"))
    data["dashboard"].update(listen=f"127.0.0.1:{dashboard_port}",
                             tokens=[{"name": "webhook", "token": TOKEN, "role": "ingest"},
                                     {"name": "ops", "token": ADMIN_TOKEN, "role": "admin"}])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    (tmp_path / "data").mkdir()
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(params=["plain", "traced"])
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str, list[str]], VigilProcess]]:
    """Start a service as its unit does; "traced" runs it under strace to list its system calls."""
    traced = request.param == "traced"
    if traced and not (shutil.which("strace") and shutil.which("systemd-analyze")):
        pytest.skip("strace or systemd-analyze is not installed here: the system-call filter is not checked")
    running: list[tuple[str, VigilProcess]] = []

    def run(service: str, argv: list[str]) -> VigilProcess:
        # As the unit's env file gives it: this service's own MQTT password, nothing else.
        env = {"VIGIL_MQTT_PASSWORD": PASSWORDS[f"vigil-{service}"]}
        if traced:
            argv = ["strace", "-f", "-qq", "-o", str(tmp_path / f"{service}.strace"), *argv]
        s = VigilProcess(argv, tmp_path / f"{service}.log", cwd=tmp_path, env=env)
        running.append((service, s))
        return s

    yield run
    for _, s in running:
        s.stop()
    if traced:
        # SQLite calls fchown() on its journal and WAL files only when it runs as root (to keep
        # them owned like the database); the units run the services as the user vigil.
        only_as_root = {"fchown"} if os.geteuid() == 0 else set()
        for service, _ in running:
            used, proc_paths = traced_calls(tmp_path / f"{service}.strace")
            assert used, f"strace recorded nothing for {service}"
            refused = sorted(used - allowed_by_unit(service) - only_as_root)
            assert not refused, f"vigil-{service}.service's SystemCallFilter refuses what it uses: {refused}"
            # ProcSubset=pid leaves only the processes' own directories in /proc. glibc's malloc
            # reads overcommit_memory when it gives memory back, and assumes the default without it;
            # prometheus-client reads /proc/stat once at import for a collector that vigil.core.metrics
            # replaces by one that needs no /proc/stat (tests/unit/vigil/core/test_process_metrics.py).
            hidden = sorted(p for p in proc_paths if not re.match(r"/proc/(self|thread-self|\d+)(/|$)", p)
                            and p not in ("/proc/sys/vm/overcommit_memory", "/proc/stat"))
            assert not hidden, f"vigil-{service} reads what ProcSubset=pid hides: {hidden}"
            # ProtectSystem=strict and ProtectHome=yes: writable are only the state directory
            # (here the test's directory, under /tmp), the rules (dashboard) and a private /tmp.
            families = set(re.findall(r"\bsocket(?:pair)?\((AF_\w+)", (tmp_path / f"{service}.strace").read_text()))
            unit = (SYSTEMD / f"vigil-{service}.service").read_text()
            allowed_families = set(re.findall(r"^RestrictAddressFamilies=(.+)$", unit, flags=re.MULTILINE)[0].split())
            assert families and families <= allowed_families, f"vigil-{service} opens {families - allowed_families}"
            written = traced_writes(tmp_path / f"{service}.strace")
            assert any(p.startswith(f"{tmp_path}/") for p in written), f"no write seen for {service}"
            outside = sorted(p for p in written if not p.startswith(("/tmp/", "/dev/null", "/dev/shm/")))
            assert not outside, f"vigil-{service} writes where its unit makes the system read-only: {outside}"


_CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]")


def traced_calls(trace: Path) -> tuple[set[str], set[str]]:
    """System call names and the /proc paths in an strace log."""
    names, proc = set(), set()
    for line in trace.read_text(errors="replace").splitlines():
        m = _CALL.match(line)
        if m and m.group(1) not in ("exited", "killed"):
            names.add(m.group(1))
        proc.update(re.findall(r'"(/proc/[^"]*)"', line))
    return names, proc


def traced_writes(trace: Path) -> set[str]:
    """Absolute paths an strace log shows opened for writing, created, renamed or removed."""
    paths: set[str] = set()
    for line in trace.read_text(errors="replace").splitlines():
        if re.search(r"\b(openat|open|creat)\(", line) and not re.search(r"O_WRONLY|O_RDWR|O_CREAT", line):
            continue
        if re.search(r"\b(openat|open|creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|rmdir)\(", line):
            paths.update(p for p in re.findall(r'"(/[^"]*)"', line))
    return paths


def _group(name: str, seen: Optional[set[str]] = None) -> set[str]:
    seen = set() if seen is None else seen
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True)
    calls: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            if entry not in seen:
                seen.add(entry)
                calls |= _group(entry, seen)
        else:
            calls.add(entry)
    return calls


def allowed_by_unit(service: str) -> set[str]:
    """What the unit's SystemCallFilter= lines let through (an allow list, then ~ deny lists)."""
    text = (SYSTEMD / f"vigil-{service}.service").read_text()
    allowed: set[str] = set()
    for value in re.findall(r"^SystemCallFilter=(.+)$", text, flags=re.MULTILINE):
        deny = value.startswith("~")
        names: set[str] = set()
        for item in value.lstrip("~").split():
            names |= _group(item) if item.startswith("@") else {item}
        allowed = allowed - names if deny else allowed | names
    return allowed


def test_bridge_rule_engine_and_dashboard_work_under_the_shipped_acl(
    tmp_path: Path, prod_broker: ProductionBroker, start: Callable[[str, list[str]], VigilProcess],
) -> None:
    dashboard_port = free_port()
    config = write_config(tmp_path, prod_broker, dashboard_port)
    # The broker is shared by the module's tests: no alert state retained by an earlier run.
    engine_user = Session(prod_broker.plain_port, "vigil-alerting", PASSWORDS["vigil-alerting"])
    try:
        assert not engine_user.connect().is_failure
        engine_user.publish("vigil/alerts/warm/pi-1/t0/temperature", b"", retain=True)
    finally:
        engine_user.close()
    # An account is one client (use_username_as_clientid): the test watches as a second dashboard.
    watcher = Session(prod_broker.plain_port, "vigil-dashboard-2", PASSWORDS["vigil-dashboard-2"])
    try:
        assert not watcher.connect().is_failure
        watcher.subscribe("vigil/#")
        services = {}
        for name in ("bridge", "alerting", "dashboard"):
            # VIGIL_BROKER as deploy/systemd/vigil.env.example writes it, on the test's ports; the
            # bridge comes in over TLS, as from another machine, checking the make-certs.sh CA.
            broker = (f"mqtts://vigil-bridge@127.0.0.1:{prod_broker.tls_port}" if name == "bridge"
                      else f"mqtt://vigil-{name}@127.0.0.1:{prod_broker.plain_port}")
            services[name] = start(name, unit_command(name, config, broker))
        assert wait_until(lambda: "connected" in services["bridge"].output()
                          and "connected to the broker" in services["alerting"].output(), timeout=30), (
            services["bridge"].output()[-2000:] + services["alerting"].output()[-2000:])
        assert wait_until(lambda: _http_ok(f"http://127.0.0.1:{dashboard_port}/login"), timeout=30), (
            services["dashboard"].output()[-2000:])

        device = Session(prod_broker.plain_port, "pi-1", PASSWORDS["pi-1"])
        try:
            assert not device.connect().is_failure
            reading = {"value": 9.5, "ts": time.time(), "unit": "°C", "seq": 1}
            assert not device.publish("vigil/readings/pi-1/t0", json.dumps(reading).encode()).is_failure
        finally:
            device.close()
        event = json.loads(watcher.wait_for("vigil/events/pi-1/temperature", timeout=20).payload)
        assert (event["device"], event["sensor"], event["value"]) == ("pi-1", "t0", 9.5)
        alert = json.loads(watcher.wait_for("vigil/alerts/warm/pi-1/t0/temperature", timeout=20).payload)
        assert alert["state"] in ("pending", "firing")
        assert wait_until(lambda: _state(watcher, "vigil/alerts/warm/pi-1/t0/temperature") == "firing", 20)

        # Acknowledged on the dashboard: published as vigil-dashboard, taken by the rule engine.
        assert wait_until(lambda: _post(dashboard_port, "/api/v1/alerts/warm/pi-1/t0/temperature/ack",
                                        {"comment": "door closed"}) == 200, timeout=20)
        assert wait_until(lambda: "acknowledged by ops" in services["alerting"].output(), timeout=20), (
            services["alerting"].output()[-2000:])

        # The dashboard's HTTP ingest publishes as vigil-dashboard; the bridge stores it.
        body = json.dumps({"value": 7.25, "ts": time.time(), "unit": "°C", "seq": 1}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{dashboard_port}/api/v1/readings?device=webhook-1&sensor=t0", data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        webhook_event = json.loads(watcher.wait_for("vigil/events/webhook-1/temperature", timeout=20).payload)
        assert webhook_event["value"] == 7.25

        # An edit saved on the dashboard's Rules page reaches the rule engine as a reload.
        edited = RULES.replace("above: 5", "above: 50")
        request = urllib.request.Request(
            f"http://127.0.0.1:{dashboard_port}/api/v1/rules/reload",
            data=json.dumps({"file": "rules.yaml", "text": edited}).encode(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["saved"] == "rules.yaml"
        assert (tmp_path / "rules" / "rules.yaml").read_text() == edited
        assert wait_until(lambda: "rules reloaded" in services["alerting"].output(), timeout=20), (
            services["alerting"].output()[-2000:])

        store = open_store(f"sqlite:///{tmp_path}/vigil.db")
        try:
            assert wait_until(lambda: {e.device for e in store.latest("temperature")} == {"pi-1", "webhook-1"}, 20)
            assert {(e.device, e.value) for e in store.latest("temperature")} == {("pi-1", 9.5), ("webhook-1", 7.25)}
        finally:
            store.close()
    finally:
        watcher.close()
    log = prod_broker.log()
    assert "not authorised" not in log.lower(), log[-2000:]
    for name, service in services.items():
        assert "not authori" not in service.output().lower(), f"{name}: {service.output()[-2000:]}"



def test_the_bridge_stores_every_reading_while_devices_ask_for_its_client_id(
    tmp_path: Path, prod_broker: ProductionBroker,
) -> None:
    # The real bridge, as its unit starts it; pi-2 keeps logging in with client id "vigil-bridge"
    # (over both listeners) while pi-1 publishes. Before use_username_as_clientid each login took
    # the bridge's session and the readings queued in it were lost.
    config = write_config(tmp_path, prod_broker, free_port())
    bridge = VigilProcess(unit_command("bridge", config, f"mqtt://vigil-bridge@127.0.0.1:{prod_broker.plain_port}"),
                          tmp_path / "bridge.log", cwd=tmp_path, env={"VIGIL_MQTT_PASSWORD": PASSWORDS["vigil-bridge"]})
    device = Session(prod_broker.plain_port, "pi-1", PASSWORDS["pi-1"])
    attackers: list[Session] = []
    total, t0 = 200, int(time.time()) - 1000
    try:
        assert wait_until(lambda: "connected" in bridge.output(), timeout=30), bridge.output()[-2000:]
        assert not device.connect().is_failure
        for seq in range(total):
            if seq % 20 == 0:
                if attackers:  # its own session ends (after a takeover, the bridge's did)
                    attackers[-1].close(end_session=True)
                tls = seq % 40 == 0
                attacker = Session(prod_broker.tls_port if tls else prod_broker.plain_port, "pi-2", PASSWORDS["pi-2"],
                                   ca_file=prod_broker.ca_file if tls else None, client_id="vigil-bridge",
                                   session_expiry=3600)
                attackers.append(attacker)
                assert not attacker.connect().is_failure
            reading = {"value": 3.0, "ts": t0 + seq, "unit": "°C", "seq": seq}
            assert not device.publish("vigil/readings/pi-1/takeover", json.dumps(reading).encode()).is_failure

        def stored() -> int:
            with sqlite3.connect(tmp_path / "vigil.db") as db:
                return int(db.execute("SELECT count(*) FROM readings WHERE device = 'pi-1' AND sensor = 'takeover'"
                                      ).fetchone()[0])

        wait_until(lambda: stored() == total, timeout=30)
        resumed = sum(a.session_present for a in attackers)
        assert (stored(), resumed) == (total, 0), (
            f"{total - stored()} of {total} readings lost, {resumed} of {len(attackers)} logins resumed the bridge's "
            f"session; bridge: {bridge.output()[-1500:]}")
        assert "lost the broker" not in bridge.output(), bridge.output()[-2000:]
    finally:
        for s in [device, *attackers]:
            s.close(end_session=True)
        bridge.stop()



def test_a_second_bridge_and_the_partitioned_template_each_log_in_as_their_own_account(
    tmp_path: Path, prod_broker: ProductionBroker,
) -> None:
    # docs/scaling.md on the shipped broker, where the username is the client id: a second bridge
    # of the shared group as vigil-bridge-2, and instances 0 and 1 of vigil-alerting@.service as
    # vigil-alerting-0 and -1 (accounts made by add-service.sh, see prodbroker.py).
    config = write_config(tmp_path, prod_broker, free_port())
    port = prod_broker.plain_port
    procs: dict[str, VigilProcess] = {}

    def run(account: str, argv: list[str]) -> None:
        procs[account] = VigilProcess(argv, tmp_path / f"{account}.log", cwd=tmp_path,
                                      env={"VIGIL_MQTT_PASSWORD": PASSWORDS[account]})

    watcher = Session(port, "vigil-dashboard-2", PASSWORDS["vigil-dashboard-2"])
    devices = {name: Session(port, name, PASSWORDS[name]) for name in ("pi-1", "pi-2")}
    series = [(d, f"p{k}") for d in devices for k in range(6)]
    owners = [[x for x in series if owns(f"{x[0]}/{x[1]}/temperature", (i, 2))] for i in range(2)]
    assert owners[0] and owners[1], "the test needs series owned by each partition"
    try:
        for account in ("vigil-bridge", "vigil-bridge-2"):
            # A session left by an earlier test's bridge keeps its plain subscription (the broker
            # is the module's): end it with a clean start, as scaling.md retires a bridge.
            ender = Session(port, account, PASSWORDS[account])
            assert not ender.connect().is_failure
            ender.close()
            (tmp_path / account).mkdir()
            run(account, [*unit_command("bridge", config, f"mqtt://{account}@127.0.0.1:{port}"),
                          "--shared-group", "bridges", "--client-id", account, "--data-dir", str(tmp_path / account)])
        for i in range(2):
            run(f"vigil-alerting-{i}", unit_command(
                "alerting", config, f"mqtt://vigil-alerting-{i}@127.0.0.1:{port}", unit="vigil-alerting@.service",
                values={"%i": str(i), "${VIGIL_ALERTING_INSTANCES}": "2", "/var/lib/vigil": str(tmp_path / "data")}))
        assert wait_until(lambda: all("connected" in p.output() for p in procs.values()), timeout=30), (
            "\n".join(p.output()[-1000:] for p in procs.values()))
        assert not watcher.connect().is_failure
        watcher.subscribe("vigil/events/#")
        watcher.subscribe("vigil/alerts/#")
        t0 = int(time.time()) - 100
        for name, device in devices.items():
            assert not device.connect().is_failure
            for seq in range(3):
                for d, sensor in series:
                    if d == name:
                        body = {"value": 9.5, "ts": t0 + seq, "unit": "°C", "seq": seq}
                        assert not device.publish(f"vigil/readings/{d}/{sensor}", json.dumps(body).encode()).is_failure

        def seen() -> tuple[list[tuple[str, str, int]], set[tuple[str, str]]]:
            watcher.pump_for(0.1)
            events = [(e["device"], e["sensor"], e["seq"]) for e in
                      (json.loads(m.payload) for m in watcher.messages if m.topic.startswith("vigil/events/"))]
            levels = [m.topic.split("/") for m in watcher.messages
                      if m.topic.startswith("vigil/alerts/warm/") and m.payload]
            # Alerts retained by the module's earlier tests are not this test's.
            return events, {(t[3], t[4]) for t in levels} & set(series)

        wait_until(lambda: len(seen()[0]) >= 3 * len(series) and len(seen()[1]) == len(series), timeout=30)
        events, alerts = seen()
        # Each reading republished once by one of the two bridges; each series' alert raised by its owner.
        assert sorted(events) == sorted((d, s, q) for d, s in series for q in range(3))
        assert alerts == set(series), f"no alert for {set(series) - alerts}"
        for account, p in procs.items():
            assert "lost the broker" not in p.output() and "not authori" not in p.output().lower(), (
                f"{account}: {p.output()[-2000:]}")
    finally:
        for s in [watcher, *devices.values()]:
            s.close()
        for p in procs.values():
            p.stop()


def _post(port: int, path: str, body: dict[str, object]) -> int:
    """POST as the admin token; the HTTP status (404 while the dashboard has not seen the alert yet)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status < 500)
    except OSError:
        return False


def _state(session: Session, topic: str) -> str:
    session.pump_for(0.1)
    states = [json.loads(m.payload).get("state") for m in session.messages if m.topic == topic and m.payload]
    return str(states[-1]) if states else ""
