"""`vigil edge` as a process publishes over MQTT 5, 3.1.1 and TLS without loading what paho never uses.

The agent defers ``urllib.request``, ``hashlib`` and ``inspect`` (edge/_deferred.py) for its memory; these
tests show that it still connects, with and without TLS, and that nothing it does needs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.edge import Recorder
from tests.support.services import Mosquitto, free_port, tcp_open, wait_until
from tests.support.tls import broker_with, make_pki

pytestmark = pytest.mark.integration

# ``vigil edge ARGS`` as the unit runs it, writing at exit which of paho's unused imports were loaded.
SCRIPT = textwrap.dedent("""
    import atexit, json, sys

    REPORT = sys.argv[1]

    def report():
        from edge._deferred import PAHO_UNUSED, is_deferred
        with open(REPORT, "w") as f:
            json.dump({"deferred": {n: is_deferred(n) for n in (*PAHO_UNUSED, "inspect")},
                       "loaded": sorted(m for m in ("http.client", "email.message", "_hashlib", "shutil", "bz2",
                                                    "lzma") if m in sys.modules),
                       "ssl": "_ssl" in sys.modules}, f)

    atexit.register(report)
    from vigil.app.cli import main
    sys.exit(main(sys.argv[2:]))
""")


# What paho imports and never uses stays unrun; inspect (dataclasses' docstrings) too; argparse's
# terminal width does not bring in shutil, bz2 and lzma (vigil/app/cli.py).
LEAN = {"deferred": {"urllib.request": True, "hashlib": True, "inspect": True}, "loaded": [], "ssl": True}


def run_agent(tmp_path: Path, recorder: Recorder, mqtt: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Run the agent until 3 readings of t0 arrived, stop it with SIGTERM; its report and its log."""
    conf = tmp_path / "edge.yaml"
    conf.write_text(yaml.safe_dump({"device": "pi-1", "mqtt": mqtt, "sensors": [
        {"name": "t0", "type": "simulated", "interval": 0.2}],
        "buffer": {"path": str(tmp_path / "q"), "batch_interval": "0.2s"}}))
    report, log = tmp_path / "report.json", tmp_path / "edge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(report), "edge", "-c", str(conf)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        arrived = recorder.wait(lambda: len(recorder.on("vigil/readings/pi-1/t0")) >= 3, 15)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert arrived and code == 0, log.read_text()
    assert recorder.seqs("vigil/readings/pi-1/t0")[:3] == [0, 1, 2]
    return json.loads(report.read_text()), log.read_text()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_agent_process_publishes_without_loading_what_paho_never_uses(
        mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path, protocol: str) -> None:
    report, log = run_agent(tmp_path, recorder, {"url": mosquitto.url, "protocol": protocol})
    assert f"(MQTT {protocol})" in log
    assert report == LEAN, report


def test_the_agent_process_publishes_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    plain = free_port()  # a second, plain listener for the recorder
    broker = broker_with(tmp_path, f"allow_anonymous true\ncafile {pki}/ca.pem\ncertfile {pki}/server.pem\n"
                                   f"keyfile {pki}/server.key\nrequire_certificate true\n"
                                   f"listener {plain} 127.0.0.1\n")
    # the broker is ready when its first listener answers; the second may open a moment later
    assert wait_until(lambda: tcp_open(plain), 10), broker.log.read_text(errors="replace")[-2000:]
    recorder = Recorder(SimpleNamespace(port=plain))  # type: ignore[arg-type]
    try:
        report, log = run_agent(tmp_path, recorder, {
            "url": f"mqtts://127.0.0.1:{broker.port}", "ca_file": str(pki / "ca.pem"),
            "cert_file": str(pki / "client.pem"), "key_file": str(pki / "client.key")})
    finally:
        recorder.close()
        broker.stop()
    assert f"connected to mqtts://127.0.0.1:{broker.port}" in log
    # TLS needs ssl (loaded anyway: paho imports it), not urllib.request or hashlib.
    assert report == LEAN, report
