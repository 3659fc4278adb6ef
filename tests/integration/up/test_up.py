"""`vigil up --demo`, as the README's first command runs it: an alert fires, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.services import Mosquitto, free_port, wait_until

VIGIL = str(Path(sys.executable).with_name("vigil"))


def _run_up(tmp_path: Path, broker_url: str) -> tuple[subprocess.Popen[str], list[str], int]:
    listen = free_port()
    proc = subprocess.Popen(
        [VIGIL, "up", "--demo", "--broker", broker_url, "--listen", f"127.0.0.1:{listen}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, [], listen


def _read_until(proc: subprocess.Popen[str], lines: list[str], needle: str, timeout: float) -> bool:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(line.rstrip("\n"))
            if needle in line:
                return True
        elif proc.poll() is not None:
            return False
        else:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), True)
    lines.extend(proc.stdout.read().splitlines())
    return code


def test_up_demo_with_embedded_broker_fires_the_freezer_alert_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()  # nothing answers there: vigil up starts its embedded broker
    proc, lines, listen = _run_up(tmp_path, f"mqtt://127.0.0.1:{port}")
    try:
        assert _read_until(proc, lines, "log in as 'admin' with the password", 60), "\n".join(lines)
        assert any("an embedded one runs there" in ln for ln in lines), "\n".join(lines)
        assert any(f"Dashboard: http://127.0.0.1:{listen}/" in ln for ln in lines), "\n".join(lines)
        password_line = next(ln for ln in lines if "log in as 'admin' with the password" in ln)
        assert len(password_line.split("password ")[1].split()[0]) >= 12
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/api/v1/health", timeout=5) as r:
            assert r.status == 200
        assert _read_until(proc, lines, "ALERT FIRING [critical] freezer-warm freezer/t0/temperature", 150), \
            "\n".join(lines[-40:])
        fired = next(ln for ln in lines if "ALERT FIRING" in ln)
        assert "is the door open?" in fired
        # and the notification itself went out through apprise, to the demo's console receiver
        assert _read_until(proc, lines, "NOTIFICATION (what your phone would show): [FIRING critical] freezer-warm "
                                        "freezer/t0/temperature", 30), "\n".join(lines[-20:])
        assert (tmp_path / "vigil-data" / "vigil.db").exists()
    finally:
        code = _stop(proc, lines)
    assert code == 0, "\n".join(lines[-30:])
    assert not any("Traceback" in ln for ln in lines), "\n".join(lines)
    # the embedded broker is gone with it
    assert wait_until(lambda: _closed(port), 5)


def _closed(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_up_uses_a_broker_that_answers_and_readings_reach_the_store(tmp_path: Path, mosquitto: Mosquitto) -> None:
    proc, lines, _ = _run_up(tmp_path, mosquitto.url)
    try:
        assert _read_until(proc, lines, "Dashboard: http://127.0.0.1:", 60), "\n".join(lines)
        assert any(f"using the one that answers at {mosquitto.url}" in ln for ln in lines), "\n".join(lines)
        from broker_bridge.stores.sqlite import SqliteStore

        db = tmp_path / "vigil-data" / "vigil.db"

        def devices() -> set[str]:
            with SqliteStore(db) as s:
                return {e.device for e in s.latest()}

        assert wait_until(lambda: devices() == {"freezer", "greenhouse", "server-room"}, 30), devices()
    finally:
        code = _stop(proc, lines)
    assert code == 0, "\n".join(lines[-30:])


def test_up_refuses_notify_without_demo(tmp_path: Path) -> None:
    out = subprocess.run([VIGIL, "up", "--notify", "json://127.0.0.1:9/x"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "--notify goes with --demo" in out.stderr
