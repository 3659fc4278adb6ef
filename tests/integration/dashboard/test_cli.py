"""``vigil dashboard`` as a user runs it: flags, the first admin password, hashes, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dashboard.passwords import verify_password
from tests.support.services import Mosquitto, free_port, wait_until

pytestmark = pytest.mark.integration

VIGIL = [sys.executable, "-m", "vigil.app.cli"]


def test_hash_password_from_a_pipe() -> None:
    out = subprocess.run([*VIGIL, "dashboard", "--hash-password"], input="a long password\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert verify_password("a long password", out.stdout.strip())
    short = subprocess.run([*VIGIL, "dashboard", "--hash-password"], input="short\n", capture_output=True,
                           text=True, timeout=30)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_config_errors_exit_3_with_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "vigil.yaml"
    f.write_text("dashboard:\n  listen: 8080\n")
    out = subprocess.run([*VIGIL, "dashboard", "-c", str(f)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert f"{f}:2: dashboard.listen: expected HOST:PORT" in out.stderr


def test_serves_with_flags_and_prints_the_first_admin_password_once(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    argv = [*VIGIL, "dashboard", "--broker", mosquitto.url, "--store", f"sqlite:///{tmp_path}/vigil.db",
            "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "made user 'admin' with password " in line, line
        password = line.split("with password ", 1)[1].split()[0]
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(base + "/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(healthy, timeout=15)
        with httpx.Client(base_url=base) as c:
            r = c.post("/login", data={"username": "admin", "password": password})
            assert r.status_code == 303
            assert c.get("/api/v1/latest").status_code == 200
        assert (tmp_path / "vigil-data" / "dashboard-admin.hash").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == 0, "SIGTERM stops the dashboard cleanly"


def test_an_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        out = subprocess.run([*VIGIL, "dashboard", "--store", f"sqlite:///{tmp_path}/v.db", "--listen",
                              f"127.0.0.1:{port}"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stderr.splitlines() == [
        f"vigil dashboard: port {port} (the dashboard) is already in use, perhaps by another Vigil; stop that, or "
        "choose another port with --listen 127.0.0.1:PORT"]
    assert not (tmp_path / "vigil-data").exists()  # checked before anything is written
