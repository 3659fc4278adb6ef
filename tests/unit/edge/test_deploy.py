"""deploy/edge: the systemd unit passes systemd's checks and the sample edge.yaml is valid."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_edge_file
from edge.queue import default_directory

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "edge"
INSTALLED_VIGIL = "/opt/vigil/.venv/bin/vigil"
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not here")


def local_unit(tmp_path: Path) -> Path:
    text = (DEPLOY / "vigil-edge.service").read_text()
    assert INSTALLED_VIGIL in text
    path = tmp_path / "vigil-edge.service"
    path.write_text(text.replace(INSTALLED_VIGIL, str(Path(sys.executable).parent / "vigil")))
    return path


@needs_systemd
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    out = subprocess.run(["systemd-analyze", "verify", str(local_unit(tmp_path))], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and not out.stderr.strip() and not out.stdout.strip(), out.stderr + out.stdout


@needs_systemd
def test_the_unit_is_hardened_by_systemds_own_measure(tmp_path: Path) -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(local_unit(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout)
    assert level and float(level.group(1)) <= 2.0, out.stdout[-500:]


def test_the_unit_runs_as_its_own_user_with_a_state_directory_and_restarts_on_failure() -> None:
    text = (DEPLOY / "vigil-edge.service").read_text()
    for line in ("User=vigil-edge", "StateDirectory=vigil-edge", "Restart=on-failure", "RestartPreventExitStatus=3",
                 f"ExecStart={INSTALLED_VIGIL} edge -c /etc/vigil/edge.yaml"):
        assert line in text.splitlines(), line
    users = (DEPLOY / "vigil-edge.sysusers.conf").read_text()
    assert "m vigil-edge gpio" in users and "m vigil-edge i2c" in users


def test_the_sample_edge_yaml_is_valid_as_shipped() -> None:
    config = load_edge_file(str(DEPLOY / "edge.yaml"))
    assert config.device == "pi-1" and [s.name for s in config.sensors] == ["freezer", "soc"]
    assert config.buffer.sync == "batch" and config.mqtt.protocol == "auto"
    # No path: the queue goes where the unit's StateDirectory= is, which systemd passes to the agent.
    assert config.buffer.path is None
    assert default_directory({"STATE_DIRECTORY": "/var/lib/vigil-edge", "HOME": "/"}) == "/var/lib/vigil-edge"
