"""`vigil up --demo`, as the README's first command runs it: an alert fires, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from tests.support.console import VIGIL, Vigil, closed
from tests.support.services import Mosquitto, free_port, wait_until


def _up_demo(tmp_path: Path, broker_url: str) -> tuple[Vigil, int]:
    listen = free_port()
    return Vigil(["up", "--demo", "--broker", broker_url, "--listen", f"127.0.0.1:{listen}"], tmp_path), listen


def test_up_demo_with_its_own_mosquitto_fires_the_freezer_alert_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()  # nothing answers there: vigil up runs Mosquitto there
    up, listen = _up_demo(tmp_path, f"mqtt://127.0.0.1:{port}")
    try:
        assert up.read_until("log in as 'admin' with the password", 60), up.output
        assert f"none answered at mqtt://127.0.0.1:{port}, so Mosquitto runs there (MQTT 5" in up.output
        assert f"Dashboard: http://127.0.0.1:{listen}/" in up.output
        password_line = up.line_with("log in as 'admin' with the password")
        assert len(password_line.split("password ")[1].split()[0]) >= 12
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/api/v1/health", timeout=5) as r:
            assert r.status == 200
        assert up.read_until("ALERT FIRING [critical] freezer-warm freezer/t0/temperature", 150), up.output[-4000:]
        assert "is the door open?" in up.line_with("ALERT FIRING")
        # and the notification itself went out through apprise, to the demo's console receiver
        assert up.read_until("NOTIFICATION (what your phone would show): [FIRING critical] freezer-warm "
                             "freezer/t0/temperature", 30), up.output[-2000:]
        assert (tmp_path / "vigil-data" / "vigil.db").exists()
    finally:
        code = up.stop()
    assert code == 0, up.output[-3000:]
    assert "Traceback" not in up.output, up.output
    # Mosquitto is gone with it, and saved its persistence file in the data directory
    assert wait_until(lambda: closed(port), 5)
    assert (tmp_path / "vigil-data" / "mosquitto" / "mosquitto.db").exists()


def test_up_uses_a_broker_that_answers_readings_reach_the_store_and_it_rides_out_a_restart(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    up, _ = _up_demo(tmp_path, mosquitto.url)
    try:
        assert up.read_until("Dashboard: http://127.0.0.1:", 60), up.output
        assert f"using the one that answers at {mosquitto.url}" in up.output
        from vigil.core.stores.sqlite import SqliteStore

        db = tmp_path / "vigil-data" / "vigil.db"

        def devices() -> set[str]:
            with SqliteStore(db) as s:
                return {e.device for e in s.latest()}

        assert wait_until(lambda: devices() == {"freezer", "greenhouse", "server-room"}, 30), devices()
        # that broker restarts: vigil up rides it out (its console's alert printer had no reconnect and
        # took vigil up down with an ExceptionGroup)
        mosquitto.restart()
        assert up.read_until("connected", 30), up.output[-3000:]
        assert not up.read_until("Traceback", 5), up.output[-3000:]
        assert up.proc.poll() is None
    finally:
        code = up.stop()
    assert code == 0, up.output[-3000:]
    assert not (tmp_path / "vigil-data" / "mosquitto").exists()


def test_up_refuses_notify_when_the_rules_are_the_users(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    out = subprocess.run([VIGIL, "up", "--notify", "json://127.0.0.1:9/x", "--listen", f"127.0.0.1:{free_port()}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("vigil up: --notify is for the rules vigil up writes; your rules in rules name "
                                 "their own receivers"), out.stderr
    assert not (tmp_path / "vigil-data").exists()
