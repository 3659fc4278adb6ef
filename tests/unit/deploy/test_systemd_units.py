"""The systemd units and the sample configuration in deploy/systemd/."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vigil.app.config import load_config

ROOT = Path(__file__).resolve().parents[3]
SYSTEMD = ROOT / "deploy" / "systemd"
ACL = ROOT / "deploy" / "mosquitto" / "vigil.acl"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SERVICES = ["bridge", "alerting", "dashboard"]
INSTALLED_VIGIL = "/opt/vigil/.venv/bin/vigil"


def unit_lines(service: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting in a unit, in order (keys may repeat)."""
    out, section = [], ""
    for raw in (SYSTEMD / f"vigil-{service}.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def setting(service: str, key: str) -> list[str]:
    return [v for _, k, v in unit_lines(service) if k == key]


def units_for_this_machine(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at this checkout's vigil (verify checks it exists)."""
    here = Path(sys.executable).parent / "vigil"
    assert here.exists(), f"{here} is missing: install the project with the README's command"
    paths = []
    # The template is checked as an instance of it, as systemd would run it.
    for unit, name in [*((f"vigil-{s}.service", f"vigil-{s}.service") for s in SERVICES),
                       ("vigil-alerting@.service", "vigil-alerting@0.service")]:
        text = (SYSTEMD / unit).read_text()
        assert INSTALLED_VIGIL in text
        path = tmp_path / name
        path.write_text(text.replace(INSTALLED_VIGIL, str(here)))
        paths.append(path)
    return paths


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    out = subprocess.run(["systemd-analyze", "verify", *map(str, units_for_this_machine(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    # verify prints unknown keys and typos as warnings but exits 0: any output is a failure here.
    assert out.returncode == 0 and not out.stderr.strip() and not out.stdout.strip(), out.stderr + out.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_units_are_hardened_by_systemds_own_measure(tmp_path: Path) -> None:
    for unit in units_for_this_machine(tmp_path):
        out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
                             capture_output=True, text=True, timeout=60)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout)
        assert level, out.stdout[-500:] + out.stderr
        # 0 is fully locked down, 10 is fully exposed; below 2 systemd rates a unit "OK".
        assert out.returncode == 0 and float(level.group(1)) <= 2.0, f"{unit.name}: exposure {level.group(1)}"


@pytest.mark.parametrize("service", SERVICES)
def test_unit_runs_the_service_as_the_vigil_user_with_the_documented_files(service: str) -> None:
    assert setting(service, "ExecStart") == [
        f"{INSTALLED_VIGIL} {service} -c /etc/vigil/vigil.yaml --broker ${{VIGIL_BROKER}}"
    ]
    assert setting(service, "User") == ["vigil"] and setting(service, "Group") == ["vigil"]
    assert setting(service, "EnvironmentFile") == ["-/etc/vigil/vigil.env", f"/etc/vigil/{service}.env"]
    assert setting(service, "StateDirectory") == ["vigil"]
    for key, value in [("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""), ("Restart", "on-failure")]:
        assert setting(service, key) == [value], f"vigil-{service}.service: {key}"


def test_the_partitioned_template_gives_each_instance_its_share_client_id_and_state_file() -> None:
    text = (SYSTEMD / "vigil-alerting@.service").read_text()
    match = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", text, flags=re.MULTILINE)
    assert match, "no ExecStart in vigil-alerting@.service"
    words = " ".join(match.group(1).split("\\\n")).split()
    assert words[:4] == [INSTALLED_VIGIL, "alerting", "-c", "/etc/vigil/vigil.yaml"]
    assert words[words.index("--partition") + 1] == "%i/${VIGIL_ALERTING_INSTANCES}"
    assert words[words.index("--client-id") + 1] == "vigil-alerting-%i"
    # A new N means new state files: an old file holds series its instance no longer owns.
    assert words[words.index("--state") + 1] == "/var/lib/vigil/alerts-%i-of-${VIGIL_ALERTING_INSTANCES}.db"
    # Each instance its own MQTT account (the broker makes the username the client id), hence its
    # own env file after the shared ones.
    assert re.findall(r"^EnvironmentFile=(.+)$", text, flags=re.MULTILINE) == [
        "-/etc/vigil/vigil.env", "/etc/vigil/alerting.env", "/etc/vigil/alerting-%i.env"]
    assert "VIGIL_BROKER=mqtt://vigil-alerting-%i@127.0.0.1:1883" in text
    plain = {k: v for _, k, v in unit_lines("alerting") if k not in ("ExecStart", "EnvironmentFile")}
    template = {}
    for raw in text.split("[Service]", 1)[1].splitlines():
        key, sep, value = raw.partition("=")
        if sep and not raw.startswith(("#", " ")) and key not in ("ExecStart", "EnvironmentFile"):
            template[key] = value
    assert {k: template.get(k) for k in plain if k in template} == {k: plain[k] for k in plain if k in template}
    assert set(plain) - {"Description", "Documentation", "After", "Wants", "WantedBy"} <= set(template)


def test_the_sysusers_file_creates_the_units_user() -> None:
    entries = [line.split() for line in (SYSTEMD / "vigil.sysusers.conf").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert entries[0][:2] == ["u", "vigil"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_logs_in_as_an_mqtt_user_that_the_acl_knows(service: str) -> None:
    acl_users = re.findall(r"^user (\S+)$", ACL.read_text(), flags=re.MULTILINE)
    example = (SYSTEMD / "vigil.env.example").read_text()
    assert f"vigil-{service}" in acl_users
    assert f"/etc/vigil/{service}.env" in example and f"as MQTT user vigil-{service}" in example
    unit_comment = (SYSTEMD / f"vigil-{service}.service").read_text()
    assert f"VIGIL_BROKER=mqtt://vigil-{service}@127.0.0.1:1883" in unit_comment


def test_sample_configuration_passes_vigil_config_check() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "vigil"), "config", "check",
                          str(SYSTEMD / "vigil.yaml.example")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "vigil.yaml.example: OK" in out.stdout


def test_sample_configuration_keeps_the_paths_the_units_make_writable() -> None:
    config = load_config(SYSTEMD / "vigil.yaml.example")
    assert config.data_dir == "/var/lib/vigil"
    assert config.alerting.state.startswith("/var/lib/vigil/")
    assert config.alerting.rules == "/etc/vigil/rules"
    assert setting("dashboard", "ReadWritePaths") == ["-/etc/vigil/rules"]
    assert config.mqtt.username is None, "a username in vigil.yaml would apply to all three services"


def test_bridge_batches_fit_in_what_mosquitto_keeps_in_flight() -> None:
    # DESIGN.md, Traps: a batch is held unacknowledged until it is stored. The bridge asks for
    # 2 x batch_size in flight (MQTT 5 receive maximum); a client on MQTT 3.1.1 sends none, and
    # Mosquitto's max_inflight_messages applies: it must hold two batches as well.
    conf = dict(line.split(None, 1) for line in MOSQUITTO_CONF.read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    example = yaml.safe_load((SYSTEMD / "vigil.yaml.example").read_text())
    batch = example["bridge"]["batch_size"]
    assert int(conf["max_inflight_messages"]) == 1000
    assert int(conf["max_queued_messages"]) == 100_000
    assert 2 * batch <= int(conf["max_inflight_messages"])
    default_batch = load_config(None).bridge.batch_size
    assert 2 * default_batch <= int(conf["max_inflight_messages"])
