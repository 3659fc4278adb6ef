"""Broker lists at the command line: `vigil up` refuses a list of which no broker answers, naming each and why;
`vigil status` reports from the first broker that answers; a bad list is refused before anything starts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.console import VIGIL
from tests.support.services import Mosquitto, free_port


def _vigil(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_vigil_up_refuses_a_list_of_which_no_broker_answers_naming_each(tmp_path: Path) -> None:
    p1, p2 = free_port(), free_port()
    out = _vigil(tmp_path, "up", "--broker", f"mqtt://127.0.0.1:{p1},mqtt://127.0.0.1:{p2}",
                 "--listen", f"127.0.0.1:{free_port()}")
    assert out.returncode == 3, out.stderr
    last = out.stderr.splitlines()[-1]
    assert last.startswith("vigil up: none of the 2 MQTT brokers lets us in: (1) no MQTT broker answers at "
                           f"127.0.0.1:{p1} (connection refused)"), last
    assert f"(2) no MQTT broker answers at 127.0.0.1:{p2} (connection refused)" in last
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "vigil-data" / "mosquitto").exists()  # no Mosquitto of its own for a list


def test_vigil_status_reports_from_the_first_broker_that_answers(tmp_path: Path, mosquitto: Mosquitto) -> None:
    dead = free_port()
    store = f"sqlite:///{tmp_path}/vigil.db"
    out = _vigil(tmp_path, "status", "--json", "--wait", "0.2", "--store", store,
                 "--broker", f"mqtt://127.0.0.1:{dead},{mosquitto.url}")
    broker = json.loads(out.stdout)[0]
    assert (broker["level"], broker["text"]) == ("ok", f"{mosquitto.url} answers"), out.stdout
    out = _vigil(tmp_path, "status", "--json", "--wait", "0.2", "--store", store,
                 "--broker", f"mqtt://127.0.0.1:{dead},mqtt://127.0.0.1:{free_port()}")
    broker = json.loads(out.stdout)[0]
    assert out.returncode == 1 and broker["level"] == "FAIL", out.stdout
    assert broker["text"].startswith(f"cannot connect to mqtt://127.0.0.1:{dead}: "), broker
    assert broker["text"].count("mqtt://127.0.0.1:") == 2, broker


def test_a_bad_list_is_refused_before_anything_starts(tmp_path: Path) -> None:
    for args in (["bridge", "--broker", "mqtt://a:1883,mqtt://A:1883"],
                 ["edge", "--broker", "mqtt://a:1883,,mqtt://b:1883", "--device", "pi", "--simulate", "t0"]):
        out = _vigil(tmp_path, *args)
        assert out.returncode == 3, (args, out.stderr)
        assert "--broker" in out.stderr and ("given twice" in out.stderr or "is empty" in out.stderr), out.stderr
