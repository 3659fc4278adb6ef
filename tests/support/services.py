"""Real servers for integration tests: Mosquitto, influxd (1.x) and VictoriaMetrics.

Each runs as a private process on a free loopback port with its own data directory, and can
be stopped, killed and started again for fault tests. Nothing here talks to a shared server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from tests.support import ROOT

__all__ = ["RUNNING", "Influxd", "Mosquitto", "Service", "VictoriaMetrics", "free_port"]

# pids of every service process this test session started, so the leftover check knows them.
RUNNING: set[int] = set()


def shipped_broker_settings(*, nagle: bool = False) -> list[str]:
    """The queue and TCP lines of deploy/mosquitto/mosquitto.conf, for a private broker in benchmarks.

    ``nagle=True`` leaves out ``set_tcp_nodelay`` (Mosquitto's default: Nagle's algorithm on).
    """
    conf = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
    wanted = ("max_inflight", "max_queued") + (() if nagle else ("set_tcp_nodelay",))
    return [line for line in conf.read_text().splitlines() if line.startswith(wanted)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Service:
    """A server process with a fixed port and data directory across restarts."""

    binary = ""

    def __init__(self, workdir: Path) -> None:
        if not shutil.which(self.binary):
            raise RuntimeError(f"{self.binary} is not installed; run the README's test command (it installs it)")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = workdir / f"{self.binary}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return tcp_open(self.port)

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        RUNNING.add(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        RUNNING.discard(self.proc.pid)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ChildProcess:
    """A restartable child process (a part of Vigil) whose output is appended to ``log``."""

    def __init__(self, argv: list[str], log: Path, cwd: Optional[Path] = None, grace: float = 15) -> None:
        self.argv = argv
        self.log = log
        self.cwd = cwd
        self.grace = grace
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, SIGKILL if it has not ended within ``grace`` seconds; nothing if it is not running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")


class Mosquitto(Service):
    """A private Mosquitto: anonymous access by default, persistence in its own directory."""

    binary = "mosquitto"

    def __init__(self, workdir: Path, extra_config: str = "", conf_file: Optional[Path] = None) -> None:
        super().__init__(workdir)
        self.extra_config = extra_config
        self.conf_file = conf_file

    def argv(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        if self.conf_file is not None:
            body = self.conf_file.read_text()
        else:
            body = (
                "allow_anonymous true\n"
                f"persistence true\npersistence_location {self.workdir}/\n"
                "max_inflight_messages 100\nmax_queued_messages 100000\n"
                f"{self.extra_config}\n"
            )
        # As root, Mosquitto drops to the "mosquitto" user, which cannot write this test's own
        # directory: its persistence would silently fail. Stay root here.
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"per_listener_settings false\n{user}listener {self.port} 127.0.0.1\n{body}")
        return ["mosquitto", "-c", str(conf)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Influxd(Service):
    """A private InfluxDB 1.x with its meta, data and wal directories under ``workdir``."""

    binary = "influxd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()

    def argv(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        d = self.workdir
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return ["influxd", "-config", str(conf)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=0.5) as r:
                return bool(r.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def query(self, q: str, db: str = "") -> dict:  # type: ignore[type-arg]
        params = urllib.parse.urlencode({"q": q, "db": db})
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/query", data=params.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def create_database(self, name: str) -> str:
        self.query(f'CREATE DATABASE "{name}"')
        return name

    def url(self, database: str) -> str:
        return f"influxdb1://127.0.0.1:{self.port}/{database}"


class VictoriaMetrics(Service):
    """A private VictoriaMetrics: it accepts the InfluxDB v2 write API (/api/v2/write)."""

    binary = "victoria-metrics"

    def argv(self) -> list[str]:
        return [
            "victoria-metrics",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir}/data",
            "-retentionPeriod=100y",
            "-search.disableCache",
            "-search.latencyOffset=0s",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=0.5) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def export(self, match: str) -> list[dict]:  # type: ignore[type-arg]
        """Series matching a PromQL selector, as /api/v1/export gives them (one JSON per line)."""
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/internal/force_flush", timeout=10).read()
        params = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/export?{params}", timeout=10) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]


def raw_http(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``request`` as it is to a loopback HTTP server and read the answer until it closes the connection."""
    with socket.create_connection((host, port), timeout=10) as s:
        try:
            s.sendall(request)
        except ConnectionError:  # the server may answer and close before it has read everything
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def wait_until(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def sqlite_says(path: Path, query: str, *args: object) -> Callable[[], bool]:
    """A check for :func:`wait_until`: whether ``query``'s first value is true in a SQLite file another
    process writes (a poison guard's marks); false while the file cannot be read."""
    def check() -> bool:
        try:
            with sqlite3.connect(path, timeout=1) as conn:
                return bool(conn.execute(query, args).fetchone()[0])
        except sqlite3.Error:
            return False
    return check


def child_pids() -> set[int]:
    """pids of this process's living children (read from /proc)."""
    me = os.getpid()
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(entry))
    return out
