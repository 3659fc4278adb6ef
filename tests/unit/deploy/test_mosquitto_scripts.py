"""deploy/mosquitto/add-device.sh and make-certs.sh with good and hostile input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto"
ADD_DEVICE = DEPLOY / "add-device.sh"
MAKE_CERTS = DEPLOY / "make-certs.sh"

needs_passwd = pytest.mark.skipif(shutil.which("mosquitto_passwd") is None,
                                  reason="mosquitto_passwd (Debian's mosquitto) is not installed here")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed here")


def add_device(passwd: Path, device: str, password: str = "device-secret") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOSQUITTO_DEVICE_PASSWORD": password}
    return subprocess.run(["sh", str(ADD_DEVICE), str(passwd), device], capture_output=True, text=True, env=env,
                          timeout=30)


@needs_passwd
def test_add_device_writes_a_hashed_password_for_a_valid_name(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    out = add_device(passwd, "freezer-1.kitchen_2")
    assert out.returncode == 0, out.stderr
    assert "may now publish on vigil/readings/freezer-1.kitchen_2/#" in out.stdout
    (line,) = passwd.read_text().splitlines()
    user, _, digest = line.partition(":")
    assert user == "freezer-1.kitchen_2" and digest.startswith("$7$") and "device-secret" not in line
    assert passwd.stat().st_mode & 0o077 == 0, "a new password file must not be readable by others"


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("pi/1", "it contains '/'"),
        ("pi-+", "it contains '+'"),
        ("#", "it contains '#'"),
        ("pi:1", "it contains ':'"),
        ("$SYS", "a leading '$' is reserved"),
        ("", "it is empty"),
        ("pi 1", "whitespace or a control character"),
        ("pi\t1", "whitespace or a control character"),
        ("pi\n1", "whitespace or a control character"),
        ("pi\x1b[31m", "whitespace or a control character"),
        ("x" * 129, "longer than 128 bytes"),
        ("é" * 65, "longer than 128 bytes"),
        ("vigil-bridge", "a Vigil service's account name"),
        ("vigil-alerting", "a Vigil service's account name"),
        ("vigil-dashboard", "a Vigil service's account name"),
        ("vigil-bridge-2", "a Vigil service's account name"),
        ("vigil-alerting-0", "a Vigil service's account name"),
        ("vigil-dashboard-host.lan", "a Vigil service's account name"),
        ("vigil-status", "a Vigil service's account name"),
    ],
)
@needs_passwd
def test_add_device_refuses_names_that_would_break_the_access_list(tmp_path: Path, device: str, reason: str) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    out = add_device(passwd, device)
    assert out.returncode == 2
    assert "refusing device name" in out.stderr and reason in out.stderr
    assert passwd.read_text() == "", "nothing may be written for a refused name"


def test_add_device_without_arguments_prints_its_usage() -> None:
    out = subprocess.run(["sh", str(ADD_DEVICE)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage:" in out.stderr


@needs_openssl
def test_make_certs_names_every_host_and_address_in_the_certificate(tmp_path: Path) -> None:
    out = subprocess.run(["sh", str(MAKE_CERTS), str(tmp_path / "certs"), "broker.example.org", "192.0.2.10", "::1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    san = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "certs" / "server.crt"), "-noout", "-ext",
                          "subjectAltName"], capture_output=True, text=True, check=True).stdout
    assert "DNS:broker.example.org" in san and "IP Address:192.0.2.10" in san and "IP Address:0:0:0:0:0:0:0:1" in san
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "certs" / "ca.crt"),
                             str(tmp_path / "certs" / "server.crt")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (tmp_path / "certs" / "ca.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "certs" / "server.key").stat().st_mode & 0o077 == 0


@needs_openssl
def test_make_certs_again_keeps_the_ca_so_devices_need_nothing_new(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    subprocess.run(["sh", str(MAKE_CERTS), str(certs), "broker.example.org"], check=True, capture_output=True)
    ca = (certs / "ca.crt").read_bytes()
    first = (certs / "server.crt").read_bytes()
    subprocess.run(["sh", str(MAKE_CERTS), str(certs), "broker.example.org"], check=True, capture_output=True)
    assert (certs / "ca.crt").read_bytes() == ca
    assert (certs / "server.crt").read_bytes() != first


@pytest.mark.parametrize("name", ["a,DNS:evil.example", "a b", "-subj", "name/with/slash", ""])
@needs_openssl
def test_make_certs_refuses_what_is_not_a_host_name_or_address(tmp_path: Path, name: str) -> None:
    out = subprocess.run(["sh", str(MAKE_CERTS), str(tmp_path / "certs"), "broker.example.org", name],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "is not a host name or an IP address" in out.stderr
    assert not (tmp_path / "certs" / "server.crt").exists()


ADD_SERVICE = DEPLOY / "add-service.sh"


def add_service(passwd: Path, acl: Path, account: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOSQUITTO_SERVICE_PASSWORD": "service-secret"}
    return subprocess.run(["sh", str(ADD_SERVICE), str(passwd), str(acl), account], capture_output=True, text=True,
                          env=env, timeout=30)


def acl_blocks(acl: Path) -> dict[str, list[str]]:
    """The topic lines of each `user` block."""
    blocks: dict[str, list[str]] = {}
    user = None
    for line in acl.read_text().splitlines():
        words = line.split()
        if words[:1] == ["user"]:
            user = words[1]
            blocks.setdefault(user, [])
        elif user is not None and words[:1] == ["topic"]:
            blocks[user].append(line)
    return blocks


@needs_passwd
def test_add_service_gives_an_instance_account_its_roles_grants_once(tmp_path: Path) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "vigil.acl"
    # A format topic the administrator has granted to the bridge is granted to every bridge.
    acl.write_text((DEPLOY / "vigil.acl").read_text().replace("#topic read zigbee2mqtt/#", "topic read zigbee2mqtt/#"))
    for _ in range(2):
        out = add_service(passwd, acl, "vigil-bridge-host2.lan")
        assert out.returncode == 0, out.stderr
        assert "VIGIL_BROKER=mqtt://vigil-bridge-host2.lan@" in out.stdout
    blocks = acl_blocks(acl)
    assert blocks["vigil-bridge-host2.lan"] == blocks["vigil-bridge"]
    assert "topic read zigbee2mqtt/#" in blocks["vigil-bridge"]
    assert acl.read_text().count("user vigil-bridge-host2.lan\n") == 1
    out = add_service(passwd, acl, "vigil-alerting-0")
    assert out.returncode == 0, out.stderr
    assert acl_blocks(acl)["vigil-alerting-0"] == blocks["vigil-alerting"] != blocks["vigil-bridge"]
    before = acl.read_text()
    assert add_service(passwd, acl, "vigil-dashboard").returncode == 0  # its block is shipped
    assert add_service(passwd, acl, "vigil-status").returncode == 0  # so is vigil status's, read-only
    assert acl.read_text() == before
    assert not any(line.startswith("topic write") for line in acl_blocks(acl)["vigil-status"])
    users = [line.partition(":")[0] for line in passwd.read_text().splitlines()]
    assert users == ["vigil-bridge-host2.lan", "vigil-alerting-0", "vigil-dashboard", "vigil-status"]
    assert "service-secret" not in passwd.read_text()


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        ("pi-1", "a service account is vigil-bridge"),
        ("vigil-bridgex", "a service account is vigil-bridge"),
        ("vigil-bridge-", "a service account is vigil-bridge"),
        ("vigil-edge-1", "a service account is vigil-bridge"),
        ("vigil-bridge-a/b", "only letters, digits"),
        ("vigil-alerting-a b", "only letters, digits"),
        ("vigil-alerting-0\n", "only letters, digits"),
        ("vigil-dashboard-a:b", "only letters, digits"),
        ("vigil-bridge-" + "x" * 120, "longer than 128 bytes"),
    ],
)
@needs_passwd
def test_add_service_refuses_what_is_not_a_service_account(tmp_path: Path, account: str, reason: str) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "vigil.acl"
    shutil.copy(DEPLOY / "vigil.acl", acl)
    passwd.write_text("")
    out = add_service(passwd, acl, account)
    assert out.returncode == 2 and "refusing account name" in out.stderr and reason in out.stderr, out.stderr
    assert passwd.read_text() == "" and acl.read_text() == (DEPLOY / "vigil.acl").read_text()


def test_add_service_without_an_acl_file_says_so(tmp_path: Path) -> None:
    out = add_service(tmp_path / "passwd", tmp_path / "missing.acl", "vigil-bridge-2")
    assert out.returncode == 2 and "no ACL file" in out.stderr
    assert not (tmp_path / "passwd").exists()
