"""Every command of the README's tour table, as written, in a fresh folder after `vigil init`.

Private services stand in for the ones the table names: the ports it writes (1883 for MQTT, 8086
for InfluxDB, 8080/8081 for dashboards) are mapped to free ones, in the commands and in the files
`vigil init` wrote, and the phone's ntfy.sh to a local receiver. Nothing else is changed.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.console import closed
from tests.support.notify import Receiver
from tests.support.services import ChildProcess, Influxd, free_port, wait_until
from vigil.core.stores.sqlite import SqliteStore

README = Path(__file__).resolve().parents[4] / "README.md"
LONG_RUNNING = {"up", "edge", "bridge", "alerting", "dashboard"}


def tour_commands() -> list[str]:
    """The commands in the "run" column of the README's tour table, in order."""
    text = README.read_text("utf-8")
    table = text.split("## A short tour", 1)[1].split("\n\n")
    rows = [ln for block in table for ln in block.splitlines() if ln.startswith("|")][2:]
    commands = []
    for row in rows:
        run = row.split("|")[2]
        commands += [c for c in re.findall(r"`([^`]+)`", run) if re.match(r"([A-Z_]+=\S+ )*vigil ", c)]
    return commands


def _subcommand(command: str) -> str:
    words = [w for w in command.split() if "=" not in w or w.startswith("-")]
    return words[1]


async def test_every_tour_command_of_the_readme_does_what_the_table_says(
        tmp_path: Path, receiver: Receiver, influxd: Influxd, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = tour_commands()
    assert [_subcommand(c) for c in commands] == [
        "init", "up", "edge", "rules", "rules", "calibration", "notify", "bridge", "alerting", "dashboard", "config"],\
        commands
    broker, up_listen, dash_listen = free_port(), free_port(), free_port()
    influxd.create_database("vigil")
    ports = {"127.0.0.1:1883": f"127.0.0.1:{broker}", "127.0.0.1:8086": f"127.0.0.1:{influxd.port}",
             "127.0.0.1:8080": f"127.0.0.1:{up_listen}", "127.0.0.1:8081": f"127.0.0.1:{dash_listen}",
             "ntfy://ntfy.sh/": f"json://127.0.0.1:{receiver.port}/"}

    def private(text: str) -> str:
        for public, mine in ports.items():
            text = text.replace(public, mine)
        return text

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the edge keeps its queue
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    monkeypatch.delenv("VIGIL_NOTIFY_NTFY_TOPIC", raising=False)
    running: list[ChildProcess] = []

    async def once(command: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, ["bash", "-c", private(command)], cwd=site,
                                       capture_output=True, text=True, timeout=60)

    def start(command: str) -> ChildProcess:
        child = ChildProcess(["bash", "-c", "exec " + private(command)], tmp_path / f"{_subcommand(command)}.log",
                             cwd=site)
        child.start()
        running.append(child)
        return child

    async def until(check: object, timeout: float = 40) -> bool:
        return await asyncio.to_thread(wait_until, check, timeout, 0.2)  # type: ignore[arg-type]

    def devices() -> set[str]:
        db = site / "vigil-data" / "vigil.db"
        if not db.exists():
            return set()
        with SqliteStore(db) as s:
            return {e.device for e in s.latest()}

    def influx_count() -> int:
        series = influxd.query("SELECT count(value) FROM temperature WHERE device='pi-1'", "vigil")
        rows = series["results"][0].get("series") or [{"values": [[0, 0]]}]
        return int(rows[0]["values"][0][1])

    def answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        for command in commands:
            what = _subcommand(command)
            if what == "init":
                out = await once(command)
                assert out.returncode == 0, out.stderr
                for name in ("vigil.yaml", "rules/rules.yaml", "rules/rules_test.yaml", "edge.yaml"):
                    f = site / name
                    f.write_text(private(f.read_text()))
            elif what == "up":
                up = start(command)
                assert await until(lambda up=up: "Start an agent" in up.output()), up.output()
                assert f"Dashboard: http://127.0.0.1:{up_listen}/" in up.output()
            elif what == "edge":
                edge = start(command)
                assert await until(lambda: "pi-1" in devices()), edge.output()[-2000:]
            elif what == "rules":
                out = await once(command)
                assert out.returncode == 0, out.stdout + out.stderr
                assert out.stdout.strip() in ("rules/: 2 rules, 1 receivers, 0 warnings", "PASS rules/rules_test.yaml: "
                                              "a freezer left open fires after 10 minutes, and clears once cold again"
                                              "\n1 passed, 0 failed"), out.stdout
            elif what == "notify":
                out = await once(command)
                assert out.returncode == 0, out.stdout + out.stderr
                assert [m["path"] for m in receiver.received] == ["/my-secret-topic"]
            elif what == "bridge":
                bridge = start(command)
                assert await until(lambda: influx_count() > 0), bridge.output()[-2000:]
            elif what == "alerting":
                alerting = start(command)
                assert await until(lambda a=alerting: "watching vigil/events/#" in a.output()), alerting.output()
                assert "2 rules from rules/" in alerting.output()
            elif what == "dashboard":
                dash = start(command)
                assert await until(lambda: answers(f"http://127.0.0.1:{dash_listen}/api/v1/health")), dash.output()
            elif what == "calibration":
                out = await once(command)
                assert out.returncode == 0, out.stdout + out.stderr
                assert out.stdout.startswith("published on vigil/calibration/freezer-1/t0/temperature: offset -0.4"), \
                    out.stdout
            else:
                assert what == "config"
                out = await once(command)
                assert out.returncode == 0 and out.stdout.startswith("# vigil.yaml: OK."), out.stdout + out.stderr
    finally:
        for child in reversed(running):
            await asyncio.to_thread(child.stop)
    assert "Traceback" not in "".join(child.output() for child in running)
    assert await until(lambda: closed(broker), 10)  # vigil up's Mosquitto stopped with it
