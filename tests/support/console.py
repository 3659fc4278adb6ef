"""A ``vigil`` command run as a user runs it: its output read line by line while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from tests.support.services import tcp_open

VIGIL = str(Path(sys.executable).with_name("vigil"))


class Vigil:
    """``vigil ARGS`` in ``cwd``, stdout and stderr together in ``lines``."""

    def __init__(self, args: list[str], cwd: Path, env: Optional[dict[str, str]] = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [VIGIL, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def read_until(self, needle: str, timeout: float) -> bool:
        """Read output until a line contains ``needle`` (True), the process ends or time runs out."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line:
                self.lines.append(line.rstrip("\n"))
                if needle in line:
                    return True
            elif self.proc.poll() is not None:
                return False
            else:
                time.sleep(0.05)
        return False

    def line_with(self, needle: str) -> str:
        return next(ln for ln in self.lines if needle in ln)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        """Ctrl-C (or ``sig``), wait, read the rest; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), True)
        self.lines.extend(self.proc.stdout.read().splitlines())
        self.proc.stdout.close()
        return code


def closed(port: int) -> bool:
    """Nothing answers on 127.0.0.1:``port``."""
    return not tcp_open(port)
