"""One box: `vigil up` without --demo runs Mosquitto, the edge command it prints works as printed,
everything it writes is in --data-dir, a second start is refused or kept apart, edits are kept."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.console import VIGIL, Vigil, closed
from tests.support.services import ChildProcess, free_port, wait_until
from vigil.core.stores.sqlite import SqliteStore


def _devices(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with SqliteStore(db) as s:
        return {e.device for e in s.latest()}


def _up(cwd: Path, broker_port: int, listen: int, data: Path, *extra: str) -> Vigil:
    return Vigil(["up", "--broker", f"mqtt://127.0.0.1:{broker_port}", "--listen", f"127.0.0.1:{listen}",
                  "--data-dir", str(data), *extra], cwd)


def test_the_printed_edge_command_works_as_printed_and_data_dir_holds_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the edge keeps its queue in the user's state directory: this test's own
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    port = free_port()
    up = _up(work, port, free_port(), data)
    edge = None
    try:
        assert up.read_until("Start an agent", 60), up.output
        assert up.read_until("vigil edge", 5), up.output
        printed = up.lines[-1].strip()
        assert printed == f"vigil edge --broker mqtt://127.0.0.1:{port} --device pi-1 --simulate t0 --interval 5"
        argv = shlex.split(printed)
        edge = ChildProcess([VIGIL, *argv[1:]], tmp_path / "edge.log", cwd=work)
        edge.start()
        assert wait_until(lambda: "pi-1" in _devices(data / "vigil.db"), 40), edge.output()[-3000:]
    finally:
        if edge is not None:
            edge.stop()
        code = up.stop()
    assert code == 0, up.output[-3000:]
    assert "Traceback" not in up.output, up.output
    assert wait_until(lambda: closed(port), 5)
    # nothing in the current folder; the store, the state, the rules and the broker's data in --data-dir
    assert sorted(p.name for p in work.iterdir()) == []
    for name in ("vigil.db", "alerts.db", "rules/rules.yaml", "rules/receivers.yaml", "mosquitto/mosquitto.db",
                 "mosquitto/mosquitto.conf", "mosquitto/mosquitto.log", "dashboard-admin.hash"):
        assert (data / name).exists(), name


def test_a_second_vigil_up_is_refused_in_one_line_or_gets_its_own_client_ids(tmp_path: Path) -> None:
    port, listen = free_port(), free_port()
    first = _up(tmp_path, port, listen, tmp_path / "d1")
    second = None
    try:
        assert first.read_until("Start an agent", 60), first.output
        log = tmp_path / "d1" / "mosquitto" / "mosquitto.log"
        connects = log.read_text().count("New client connected")
        # the dashboard's port is taken: one line naming the port and the flag, nothing written or connected
        out = subprocess.run([VIGIL, "up", "--broker", f"mqtt://127.0.0.1:{port}", "--listen", f"127.0.0.1:{listen}",
                              "--data-dir", str(tmp_path / "d2")], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 1
        assert (out.stdout + out.stderr).splitlines() == [
            f"vigil up: port {listen} (the dashboard) is already in use, perhaps by another Vigil; stop that, or "
            "choose another port with --listen 127.0.0.1:PORT"]
        assert not (tmp_path / "d2").exists()
        assert log.read_text().count("New client connected") == connects
        # the same data directory on another port: refused too
        out = subprocess.run([VIGIL, "up", "--broker", f"mqtt://127.0.0.1:{port}", "--listen",
                              f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d1")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert (out.stdout + out.stderr).splitlines() == [
            f"vigil up: another vigil up (pid {first.proc.pid}) is running with the data directory "
            f"{tmp_path / 'd1'}; stop it, or give this one its own --data-dir and --listen"]
        assert log.read_text().count("New client connected") == connects
        # another data directory and port on the same broker: it runs, with client ids of its own
        second = _up(tmp_path, port, free_port(), tmp_path / "d3")
        assert second.read_until("Start an agent", 60), second.output
        assert "using the one that answers" in second.output
        ids = [re.search(r"bridge connected to \S+ as (\S+);", p.output) for p in (first, second)]
        assert ids[0] and ids[1] and ids[0].group(1) != ids[1].group(1), (first.output, second.output)
        assert "already connected, closing old connection" not in log.read_text()
    finally:
        if second is not None:
            assert second.stop() == 0, second.output[-2000:]
        assert first.stop() == 0, first.output[-2000:]


def test_rules_written_by_vigil_up_are_written_once_and_edits_survive_every_start(tmp_path: Path) -> None:
    port = free_port()
    up = _up(tmp_path, port, free_port(), tmp_path / "data", "--demo")
    try:
        assert up.read_until("Dashboard:", 60), up.output
    finally:
        assert up.stop() == 0, up.output[-2000:]
    rules = tmp_path / "data" / "demo-rules" / "demo.yaml"
    edited = rules.read_text().replace("above: -15 ", "above: -12 ", 1) + "# my note\n"
    rules.write_text(edited)
    # a start that fails (nothing answers at a TLS address, which vigil up does not run itself) leaves
    # the rules alone ...
    tls = f"mqtts://127.0.0.1:{free_port()}"
    out = subprocess.run([VIGIL, "up", "--demo", "--broker", tls, "--listen", f"127.0.0.1:{free_port()}",
                          "--data-dir", str(tmp_path / "data")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and f"no MQTT broker answers at {tls}" in out.stderr, out.stderr
    assert rules.read_text() == edited
    # ... and so does one that runs
    up = _up(tmp_path, port, free_port(), tmp_path / "data", "--demo")
    try:
        assert up.read_until("Dashboard:", 60), up.output
        assert f"Rules: {rules} (kept as it is" in up.output
    finally:
        assert up.stop() == 0, up.output[-2000:]
    assert rules.read_text() == edited


def test_a_pi_comes_in_through_a_password_listener_of_the_users_own_in_conf_d(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import signal

    from vigil.app.preflight import check_broker
    from vigil.core.settings import MqttSettings

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    data = tmp_path / "data"
    (data / "mosquitto" / "conf.d").mkdir(parents=True)
    passwd = data / "mosquitto" / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "pi-1", "pi-secret"], check=True)
    pi_port = free_port()  # docs/one-box.md: "listener 1884" on every interface; loopback in a test
    (data / "mosquitto" / "conf.d" / "pi.conf").write_text(
        f"listener {pi_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n")
    broker_port = free_port()
    up = _up(tmp_path, broker_port, free_port(), data)
    edge = None
    try:
        assert up.read_until("Start an agent", 60), up.output
        anonymous = asyncio.run(check_broker(MqttSettings(url=f"mqtt://127.0.0.1:{pi_port}"), "nobody",
                                             persistent=False))
        assert anonymous is not None and "refused anonymous clients" in str(anonymous)
        edge = ChildProcess([VIGIL, "edge", "--broker", f"mqtt://pi-1:pi-secret@127.0.0.1:{pi_port}", "--device",
                             "pi-1", "--simulate", "t0", "--interval", "1"], tmp_path / "edge.log", cwd=tmp_path)
        edge.start()
        assert wait_until(lambda: "pi-1" in _devices(data / "vigil.db"), 40), edge.output()[-3000:]
    finally:
        if edge is not None:
            edge.stop()
        up.stop(signal.SIGKILL)  # killed, not stopped: its Mosquitto must not outlive it
    assert wait_until(lambda: closed(broker_port), 15), "the managed Mosquitto outlived vigil up"


def test_a_managed_mosquitto_that_dies_is_started_again_and_readings_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / "state"))
    port, data = free_port(), tmp_path / "data"
    up = _up(tmp_path, port, free_port(), data)
    edge = ChildProcess([VIGIL, "edge", "--broker", f"mqtt://127.0.0.1:{port}", "--device", "pi-1", "--simulate",
                         "t0", "--interval", "1"], tmp_path / "edge.log", cwd=tmp_path)
    try:
        assert up.read_until("Start an agent", 60), up.output
        edge.start()
        assert wait_until(lambda: "pi-1" in _devices(data / "vigil.db"), 40), edge.output()[-3000:]
        mosquitto = _child_named(up.proc.pid, "mosquitto")
        os.kill(mosquitto, signal.SIGKILL)
        assert up.read_until("MQTT broker: Mosquitto is back", 30), up.output[-3000:]
        assert "MQTT broker: Mosquitto stopped (exit status -9; " in up.output
        with SqliteStore(data / "vigil.db") as s:
            before = max(e.ts for e in s.latest(device="pi-1"))

        def newer() -> bool:
            with SqliteStore(data / "vigil.db") as s:
                return max(e.ts for e in s.latest(device="pi-1")) > before + 2

        assert wait_until(newer, 60), edge.output()[-3000:]
    finally:
        edge.stop()
        assert up.stop() == 0, up.output[-3000:]


def _child_named(parent: int, name: str) -> int:
    """The pid of ``parent``'s child process called ``name`` (from /proc: no procps needed)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, _, rest = stat.read_text().partition(" (")
            comm, _, fields = rest.rpartition(") ")
        except OSError:
            continue
        if comm == name and int(fields.split()[1]) == parent:
            return int(pid)
    raise AssertionError(f"no child process {name!r} of {parent}")
