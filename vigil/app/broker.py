"""The Mosquitto that ``vigil up`` runs when no broker answers: a managed child process.

Its configuration is derived, at each start, from the shipped production one
(``deploy/mosquitto/mosquitto.conf``): the same queue limits, TCP and persistence settings, so
that one box loses nothing a production broker would keep. What does not fit a single box is
left out: the TLS listener, passwords and ACLs (the managed broker listens on loopback only
and lets anonymous clients in there). Its data and log live in ``<data-dir>/mosquitto/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from vigil.core.errors import VigilError

__all__ = ["LOOPBACK", "BrokerError", "ManagedMosquitto", "managed_config", "shipped_config_path"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# The settings of the shipped configuration a single box keeps; everything else (listeners, TLS,
# passwords, ACLs, client-id rules, its persistence path and log destination) is the box's own.
_KEPT = frozenset({
    "max_inflight_messages", "max_queued_messages", "max_queued_bytes", "set_tcp_nodelay",
    "persistent_client_expiration", "max_packet_size", "autosave_interval", "log_type", "log_timestamp_format",
})

INSTALL_HINT = ("install it with: sudo apt-get install mosquitto (Debian, Raspberry Pi OS), "
                "or start a broker yourself and name it with --broker")


class BrokerError(VigilError):
    """The managed broker cannot be started; the message says what to do."""


def shipped_config_path() -> Path:
    """deploy/mosquitto/mosquitto.conf of the checkout Vigil is installed from."""
    return Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


def managed_config(shipped: str, port: int, data: Path, *, host: str = "127.0.0.1") -> str:
    """The managed broker's mosquitto.conf: ``shipped``'s queue, TCP and persistence settings,
    one anonymous listener on ``host:port`` (loopback), persistence and log in ``data``, and the
    listeners of the user's own in ``data/conf.d/*.conf`` (for devices on the network)."""
    kept = [line.strip() for line in shipped.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and line.split()[0] in _KEPT]
    root = ["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    # Mosquitto run as root would switch to the "mosquitto" user, who cannot write the data directory.
    extra = [f"include_dir {data / 'conf.d'}"] if (data / "conf.d").is_dir() else []
    return "\n".join([
        "# Written by `vigil up` at each start (edits here are lost): the settings of",
        "# deploy/mosquitto/mosquitto.conf that fit one box, one anonymous listener on loopback.",
        "# Listeners of your own (with passwords: for a Pi on the network) go in conf.d/*.conf.",
        # each listener has its own security settings: anonymous on loopback, not on the user's
        "per_listener_settings true",
        *root,
        "persistence true",
        f"persistence_location {data}/",
        "log_dest stderr",
        *kept,
        f"listener {port} {host}",
        "allow_anonymous true",
        *extra,
        "",
    ])


class ManagedMosquitto:
    """Mosquitto as a child process of this one; :meth:`start` waits until it answers."""

    def __init__(self, data: Path, port: int, host: str = "127.0.0.1", shipped: Optional[Path] = None,
                 search_path: Optional[str] = None) -> None:
        self.data = data
        # Debian installs it in /usr/sbin, which is not in a user's PATH
        self.search_path = search_path if search_path is not None else os.pathsep.join(
            (os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"))
        self.port = port
        self.host = host
        self.shipped = shipped or shipped_config_path()
        self.log = data / "mosquitto.log"
        self.conf = data / "mosquitto.conf"
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, answers: Callable[[], bool], timeout: float = 15.0) -> None:
        """Write the configuration, start Mosquitto, wait until ``answers()``; BrokerError otherwise."""
        self.spawn()
        self.wait_ready(answers, timeout)

    def spawn(self) -> None:
        """Write the configuration and start Mosquitto (call it from a thread that lives as long as
        this process, such as the event loop's: Linux stops the broker when that thread ends)."""
        binary = shutil.which("mosquitto", path=self.search_path)
        if binary is None:
            raise BrokerError(f"no MQTT broker answers at {self.host}:{self.port} and Mosquitto is not installed; "
                              f"{INSTALL_HINT}")
        try:
            shipped = self.shipped.read_text("utf-8")
        except OSError as exc:
            raise BrokerError(f"cannot read the shipped broker settings {self.shipped} ({exc.strerror}); "
                              "install Vigil from its checkout with deploy/setup.sh") from exc
        self.data.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(managed_config(shipped, self.port, self.data.resolve(), host=self.host), "utf-8")
        with self.log.open("ab") as log:
            # Its own session: Ctrl-C in the terminal reaches vigil up, which stops the broker last,
            # after the services have said goodbye through it.
            self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def wait_ready(self, answers: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until ``answers()``; BrokerError (and the broker stopped) when it does not come up."""
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"Mosquitto stopped at start (exit status {self.proc.returncode}): "
                                  f"{self.last_log_line()} (its log: {self.log})")
            if answers():
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Mosquitto did not answer on {self.host}:{self.port} within {timeout:.0f} s "
                          f"(its log: {self.log})")

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL after ``grace`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when vigil up dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)

