"""The dashboard's feed connection carries its last will: `vigil status` reports a SIGKILLed dashboard
offline at once (not stale minutes later), and one stopped cleanly says it stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.chain import Dashboard
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _status(broker: Mosquitto, store: str) -> str:
    out = subprocess.run([sys.executable, "-m", "vigil.app.cli", "status", "--broker", broker.url, "--store", store,
                          "--wait", "1"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    return out.stdout


def _line(broker: Mosquitto, store: str) -> str:
    return next((line for line in _status(broker, store).splitlines() if " dashboard vigil-dashboard" in line), "")


def test_a_killed_dashboard_is_offline_in_vigil_status_at_once(mosquitto: Mosquitto, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/vigil.db"
    board = Dashboard(tmp_path / "dashboard", mosquitto, store)
    try:
        assert wait_until(lambda: _line(mosquitto, store).startswith("[ok]"), 30), _status(mosquitto, store)
        board.proc.proc.kill()
        board.proc.proc.wait(10)
        line = _line(mosquitto, store)  # right after: the broker sent the will when the socket closed
        assert line.startswith("[FAIL]") and "offline" in line and "its last will" in line, _status(mosquitto, store)
        board = Dashboard(tmp_path / "dashboard", mosquitto, store)
        assert wait_until(lambda: _line(mosquitto, store).startswith("[ok]"), 30), _status(mosquitto, store)
        board.stop()
        line = _line(mosquitto, store)
        assert line.startswith("[FAIL]") and "offline (stopped)" in line, _status(mosquitto, store)
    finally:
        board.stop()
