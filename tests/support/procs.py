"""Real `vigil` processes and a local HTTP receiver for apprise ``json://`` notifications."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from tests.support.services import free_port

VIGIL = str(Path(sys.executable).parent / "vigil")


class VigilProcess:
    """A `vigil` command running in the background; its output goes to ``log``."""

    def __init__(self, argv: list[str], log: Path, *, cwd: Path, env: Optional[dict[str, str]] = None) -> None:
        self.log = log
        self.argv = argv
        base = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env={**base, **(env or {})}, cwd=cwd, stdout=out,
                                         stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _target(self) -> int:
        """The service's pid: under strace, the traced child, so that strace sees it end."""
        if Path(self.argv[0]).name == "strace":
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, as systemd and docker stop a service; SIGKILL if it does not end in 15 s."""
        if self.proc.poll() is None:
            os.kill(self._target(), signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Receiver:
    """An HTTP server on 127.0.0.1 keeping every JSON body POSTed to it (apprise ``json://``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    bodies.append(json.loads(raw))
                except ValueError:
                    bodies.append({"raw": raw.decode("utf-8", "replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="deploy-test-receiver")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
