"""A private Mosquitto running the shipped production configuration (deploy/mosquitto/).

Only what cannot be used in a test is changed: Debian's paths become the test's directory and
the listeners move to free loopback ports. Any other line is used as shipped, and a line this
module does not know how to move makes it fail, so the test cannot drift from the file.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT
from tests.support.services import Mosquitto, free_port

DEPLOY = ROOT / "deploy" / "mosquitto"
CONF = DEPLOY / "mosquitto.conf"
ACL = DEPLOY / "vigil.acl"
MAKE_CERTS = DEPLOY / "make-certs.sh"
ADD_SERVICE = DEPLOY / "add-service.sh"

# Every user of a production installation, with the password each test uses.
PASSWORDS = {
    "pi-1": "pi-1-secret",
    "pi-2": "pi-2-secret",
    "vigil-bridge": "bridge-secret",
    "vigil-alerting": "alerting-secret",
    "vigil-dashboard": "dashboard-secret",
    # Made with mosquitto_passwd directly, which add-device.sh would refuse (see test_mosquitto_acl).
    "pi/1": "slash-secret",
}
# A second bridge of the shared group, two rule-engine partitions and a second dashboard: accounts of their own, made
# by add-service.sh (which also gives each its role's grants in the ACL), as docs/scaling.md says.
INSTANCES = {
    "vigil-bridge-2": "bridge-2-secret",
    "vigil-alerting-0": "alerting-0-secret",
    "vigil-alerting-1": "alerting-1-secret",
    "vigil-dashboard-2": "dashboard-2-secret",  # the tests' own observer, beside a running dashboard
}
PASSWORDS.update(INSTANCES)


@dataclass
class ProductionBroker:
    """The running broker: ``plain_port`` (loopback listener), ``tls_port``, and the test CA."""

    mosquitto: Mosquitto
    tls_port: int
    ca_file: Path

    @property
    def plain_port(self) -> int:
        return self.mosquitto.port

    def log(self) -> str:
        return self.mosquitto.log.read_text(errors="replace")


def rewrite_conf(text: str, workdir: Path, tls_port: int) -> str:
    """The production configuration with paths under ``workdir`` and listeners on test ports."""
    paths = {
        "/etc/mosquitto/passwd": workdir / "passwd",
        "/etc/mosquitto/vigil.acl": workdir / "vigil.acl",
        "/etc/mosquitto/certs/server.crt": workdir / "certs" / "server.crt",
        "/etc/mosquitto/certs/server.key": workdir / "certs" / "server.key",
        "/var/lib/mosquitto/": workdir / "data",
    }
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        key, args = words[0], words[1:]
        if key == "listener":
            if args == ["1883", "127.0.0.1"]:
                continue  # tests/support/services.py adds the loopback listener on a free port
            if args == ["8883"]:
                out.append(f"listener {tls_port} 127.0.0.1")
                continue
            raise AssertionError(f"the test does not know how to move this listener: {line!r}")
        if key in {"password_file", "acl_file", "certfile", "keyfile", "persistence_location"}:
            if args[0] not in paths:
                raise AssertionError(f"the test does not know this path: {line!r}")
            out.append(f"{key} {paths[args[0]]}{'/' if args[0].endswith('/') else ''}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _as_in_production(path: Path, mode: int, owner: str = "root") -> None:
    """Give ``path`` the owner and mode that docs/production.md prescribes.

    Mosquitto started as root reads its files after it has become the ``mosquitto`` user, so
    this is what makes the documented permissions tested ones. A non-root run keeps its own.
    """
    path.chmod(mode)
    if os.geteuid() == 0:
        gid = grp.getgrnam("mosquitto").gr_gid
        shutil.chown(path, owner, gid)


def start_production_broker(workdir: Path) -> ProductionBroker:
    """Write the password file, the ACL and a throwaway CA into ``workdir`` and start Mosquitto.

    ``workdir`` must be reachable by the ``mosquitto`` user when the tests run as root.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    _as_in_production(workdir / "data", 0o750, owner="mosquitto")
    passwd = workdir / "passwd"
    passwd.touch(mode=0o600)
    shutil.copy(ACL, workdir / "vigil.acl")
    for user, password in PASSWORDS.items():
        if user in INSTANCES:
            subprocess.run(["sh", str(ADD_SERVICE), str(passwd), str(workdir / "vigil.acl"), user], check=True,
                           capture_output=True, env={**os.environ, "MOSQUITTO_SERVICE_PASSWORD": password})
        else:
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                           capture_output=True)
    _as_in_production(passwd, 0o640)
    _as_in_production(workdir / "vigil.acl", 0o644)
    subprocess.run(["sh", str(MAKE_CERTS), str(workdir / "certs"), "127.0.0.1"], check=True,
                   capture_output=True)
    _as_in_production(workdir / "certs" / "server.key", 0o640)
    tls_port = free_port()
    conf = workdir / "production.conf"
    conf.write_text(rewrite_conf(CONF.read_text(), workdir, tls_port))
    broker = Mosquitto(workdir / "run", conf_file=conf)
    broker.start()
    return ProductionBroker(broker, tls_port, workdir / "certs" / "ca.crt")
