"""The bridge, the rule engine and the dashboard check the broker and the store at start, and say
in one line what is wrong and what to try."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.console import VIGIL, Vigil
from tests.support.services import Influxd, Mosquitto, free_port


@pytest.fixture
def locked_mosquitto(tmp_path: Path) -> Mosquitto:
    """A Mosquitto that lets nobody in without a password (and has no passwords)."""
    conf = tmp_path / "locked.conf"
    conf.write_text(f"allow_anonymous false\npersistence false\nlog_dest file {tmp_path}/locked.log\n")
    broker = Mosquitto(tmp_path / "locked", conf_file=conf)
    broker.start()
    yield broker  # type: ignore[misc]
    broker.stop()


def _vigil(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_credentials_refused_is_one_line_naming_the_user_and_what_to_check(
        tmp_path: Path, locked_mosquitto: Mosquitto) -> None:
    url = f"mqtt://pi:secret@127.0.0.1:{locked_mosquitto.port}"
    for part, extra in (("bridge", []), ("alerting", ["--state", str(tmp_path / "a.db")]),
                        ("dashboard", ["--listen", f"127.0.0.1:{free_port()}"])):
        out = _vigil(tmp_path, part, "--broker", url, *extra)
        assert out.returncode == 3, (part, out.stderr)
        lines = [ln for ln in out.stderr.splitlines() if ln.startswith(f"vigil {part}:")]
        assert lines == [f"vigil {part}: the MQTT broker at mqtt://pi:***@127.0.0.1:{locked_mosquitto.port} refused "
                         "user 'pi': [code:135] Not authorized; check mqtt.username and the password "
                         "(VIGIL_MQTT_PASSWORD or mqtt.password), or --broker mqtt://USER:PASS@HOST:PORT"], out.stderr
        assert "secret" not in out.stdout + out.stderr


def test_tls_to_a_plain_port_says_so(tmp_path: Path, mosquitto: Mosquitto) -> None:
    out = _vigil(tmp_path, "alerting", "--broker", f"mqtts://127.0.0.1:{mosquitto.port}", "--state",
                 str(tmp_path / "a.db"))
    assert out.returncode == 3
    assert out.stderr.splitlines()[0] == (
        f"vigil alerting: TLS with the MQTT broker at mqtts://127.0.0.1:{mosquitto.port} failed: it closed the "
        "connection during the handshake; is it a plain MQTT port? use mqtt:// there, or the TLS port (usually "
        "8883) with mqtts://")


def test_a_missing_influxdb_database_is_named_with_how_to_create_it(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd) -> None:
    out = _vigil(tmp_path, "bridge", "--broker", mosquitto.url, "--store", influxd.url("nosuchdb"))
    assert out.returncode == 3
    create = (f"curl -XPOST http://127.0.0.1:{influxd.port}/query --data-urlencode "
              "'q=CREATE DATABASE \"nosuchdb\"'")
    assert out.stderr.splitlines() == [
        f"vigil bridge: the store influxdb1://127.0.0.1:{influxd.port}/nosuchdb refused: database not found: "
        f"nosuchdb (create it, or fix the store URL); to create it: {create}"]
    # the command it prints works as printed, and then the bridge starts
    subprocess.run(["bash", "-c", create], check=True, capture_output=True, timeout=30)
    bridge = Vigil(["bridge", "--broker", mosquitto.url, "--store", influxd.url("nosuchdb"), "--data-dir",
                    str(tmp_path / "data")], tmp_path)
    try:
        assert bridge.read_until("storing into", 30), bridge.output
        assert "vigil bridge:" not in bridge.output
    finally:
        assert bridge.stop() == 0, bridge.output


def test_a_broker_and_store_not_up_yet_are_said_and_the_bridge_keeps_trying(tmp_path: Path) -> None:
    broker, store = free_port(), free_port()
    bridge = Vigil(["bridge", "--broker", f"mqtt://127.0.0.1:{broker}", "--store",
                    f"influxdb1://127.0.0.1:{store}/vigil", "--data-dir", str(tmp_path / "data")], tmp_path)
    try:
        assert bridge.read_until("readings wait on disk meanwhile", 30), bridge.output
        assert bridge.lines[:2] == [
            f"vigil bridge: no MQTT broker answers at 127.0.0.1:{broker} (connection refused); start it, or name "
            "another with --broker mqtt://HOST:PORT; trying again meanwhile",
            f"vigil bridge: the store influxdb1://127.0.0.1:{store}/vigil does not answer (connection refused); "
            "start it, or check --store; readings wait on disk meanwhile",
        ]
        assert bridge.read_until("reconnecting with backoff", 30), bridge.output  # waiting for them, as at boot
    finally:
        assert bridge.stop() == 0, bridge.output


def test_vigil_up_on_a_broker_that_refuses_it_says_so_in_one_line(tmp_path: Path, locked_mosquitto: Mosquitto) -> None:
    out = _vigil(tmp_path, "up", "--broker", f"mqtt://127.0.0.1:{locked_mosquitto.port}", "--listen",
                 f"127.0.0.1:{free_port()}")
    assert out.returncode == 3
    assert out.stderr.splitlines()[-1] == (
        f"vigil up: the MQTT broker at mqtt://127.0.0.1:{locked_mosquitto.port} refused anonymous clients (no "
        "username given): [code:135] Not authorized; check mqtt.username and the password (VIGIL_MQTT_PASSWORD or "
        "mqtt.password), or --broker mqtt://USER:PASS@HOST:PORT"), out.stderr
    assert "Traceback" not in out.stderr


def test_vigil_up_with_broken_rules_lists_each_problem_and_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "kitchen.yaml").write_text("rules:\n  - name: warm\n    match: {metric: temperature}\n"
                                                     "    above: warm\n")
    port = free_port()
    out = _vigil(tmp_path, "up", "--broker", f"mqtt://127.0.0.1:{port}", "--listen", f"127.0.0.1:{free_port()}")
    assert out.returncode == 3
    lines = out.stderr.splitlines()
    assert lines[0].startswith("rules/kitchen.yaml:4: rule 'warm': above:"), out.stderr
    assert lines[-1] == "vigil up: fix the rules above (vigil rules check rules), then start again"
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "vigil-data" / "mosquitto").exists()  # no broker was started for nothing
