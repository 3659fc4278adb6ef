"""A private PostgreSQL for the engine-failover tests: Debian's ``initdb`` and ``postgres`` on a free loopback port.

PostgreSQL refuses to run as root (the tests run as root in CI), so when they do, the cluster's directory is made
outside pytest's root-only temporary folder, given to the ``postgres`` user that Debian's package creates, and the
server runs as that user. It listens on TCP only (no Unix socket), with ``trust`` for loopback connections: the
server is this test's own and nothing else can reach it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Optional

from tests.support.services import Service, tcp_open

__all__ = ["PG_BIN", "Postgres"]


def _pg_bin() -> Optional[str]:
    """The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return str(Path(found[-1]).parent) if found else None


PG_BIN = _pg_bin()


class Postgres(Service):
    """One server with its own data directory; ``url(db)`` is a ``postgresql://`` URL for a database in it."""

    binary = f"{PG_BIN}/postgres" if PG_BIN else "postgres"

    def __init__(self, workdir: Path) -> None:
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL is not installed; run the README's test command (it installs it)")
        super().__init__(workdir)
        self.log = workdir / "postgres.log"  # not under the binary's full path
        self._as_root = os.geteuid() == 0
        # the cluster lives where the postgres user can reach it (pytest's /tmp/pytest-of-root is 0700)
        self.home = Path(tempfile.mkdtemp(prefix="vigil-pg-")) if self._as_root else workdir
        self.data = self.home / "data"
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.home, pw.pw_uid, pw.pw_gid)
        self._run([f"{PG_BIN}/initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_root else argv

    def _run(self, argv: list[str]) -> None:
        out = subprocess.run(self._as_user(argv), capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"{argv[0]} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")

    def argv(self) -> list[str]:
        # fsync off: a test's server, thrown away after it; the crash tests kill Vigil's parts, never the server
        return self._as_user([self.binary, "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                              "-k", "", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"])

    def ready(self) -> bool:
        """It accepts a session (its port opens while it still says "the database system is starting up")."""
        import psycopg

        if not tcp_open(self.port):
            return False
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: Optional[str] = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def postmaster(self) -> int:
        """The server's own pid (run as root, :attr:`proc` is ``runuser``'s)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop_fast(self) -> None:
        """Stop the server at once: SIGINT (fast shutdown, which ends the open sessions) to the postmaster itself. Run
        as root, :meth:`stop` signals ``runuser``: SIGTERM means a smart shutdown, which waits for open sessions, and
        ``stop(signal.SIGINT)`` was not passed on (it waited its 10 s, then killed runuser and left the postmaster
        running)."""
        os.kill(self.postmaster(), signal.SIGINT)
        self.stop()  # waits for the process it started (runuser, or the postmaster) to end

    def cleanup(self) -> None:
        """Stop the server and remove a cluster made outside the test's folder."""
        self.stop()
        if self._as_root:
            shutil.rmtree(self.home, ignore_errors=True)
