"""Who watches the watcher, through the real processes: `vigil edge` -> Mosquitto -> `vigil bridge` ->
influxd, and `vigil alerting` -> local HTTP receivers. Each fault happens while a device is online and
sending; the built-in alert vigil-pipeline must reach its receiver once and resolve once, with short
bounds from the engine's vigil.yaml (alerting.watchdog), not minutes of sleep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.alerting import Receiver
from tests.support.alerting import receiver as receiver  # the fixture: the second receiver
from tests.support.chain import Chain, Dashboard, Hook, PersistentRecorder, rules_yaml
from tests.support.services import Influxd, Mosquitto, wait_until

pytestmark = pytest.mark.integration

PIPELINE = "vigil-pipeline vigil/watchdog/pipeline"
BOUNDS = {"no_events": "10s", "bridge_offline": "1s", "store_down": "2s", "notify_failing": "2s",
          "broker_down": "5s", "clear_after": "2s"}


def _chain(tmp_path: Path, broker: Mosquitto, influxd: Influxd, hook: Hook, rules: str | None = None,
           notify: list[str] | None = None) -> Chain:
    chain = Chain(tmp_path, broker, influxd, influxd.create_database("wd"), hook, rules=rules)
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump({"alerting": {"watchdog": {**BOUNDS, "notify": notify or []}}}))
    chain.engine.argv += ["-c", str(config)]
    return chain


def _running(chain: Chain) -> None:
    """Started, with device cold-1 online and its readings stored."""
    chain.start()
    chain.edge("cold-1", base=4.0)
    assert wait_until(lambda: chain.stored().get("cold-1", 0) > 5, 30), chain.bridge.output()[-2000:]


def pipeline_states(receiver: Receiver) -> list[str]:
    """FIRING / RESOLVED of the pipeline alert, in the order the receiver got them."""
    return [str(b.get("title", "")).split("]")[0].strip("[").split()[0] for b in list(receiver.bodies)
            if PIPELINE in str(b.get("title", ""))]


def _status(tmp_path: Path, broker: Mosquitto, influxd: Influxd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil.app.cli", "status", "--broker", broker.url, "--store",
                           influxd.url("wd"), "--wait", "1"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])


def test_bridge_killed_fires_once_and_resolves_once_and_vigil_status_says_so(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, hook: Hook) -> None:
    chain = _chain(tmp_path, mosquitto, private_influxd, hook)
    board = None
    try:
        _running(chain)
        board = Dashboard(tmp_path / "dashboard", mosquitto, private_influxd.url("wd"))
        ok = _status(tmp_path, mosquitto, private_influxd)
        assert ok.returncode == 0, ok.stdout
        assert "[ok]    bridge vigil-bridge-0" in ok.stdout and "[ok]    alerting vigil-alerting-0" in ok.stdout, \
            ok.stdout
        assert "[ok]    dashboard vigil-dashboard" in ok.stdout, ok.stdout
        assert "[ok]    store" in ok.stdout and "1 online" in ok.stdout, ok.stdout
        chain.bridge.kill()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING"], 20), (hook.bodies, chain.engine.output()[-3000:])
        body = next(b for b in hook.bodies if PIPELINE in str(b.get("title", "")))["message"]
        assert "the bridge vigil-bridge-0 is offline since" in body and "systemctl start vigil-bridge" in body, body
        bad = _status(tmp_path, mosquitto, private_influxd)
        assert bad.returncode == 1, bad.stdout
        assert "[FAIL]  bridge vigil-bridge-0" in bad.stdout and "[FAIL]  pipeline" in bad.stdout, bad.stdout
        chain.bridge.start()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING", "RESOLVED"], 30), chain.engine.output()[-3000:]
        good = _status(tmp_path, mosquitto, private_influxd)
        assert good.returncode == 0, good.stdout
        wait_until(lambda: False, 3)  # a second firing or resolve would come now
        assert pipeline_states(hook) == ["FIRING", "RESOLVED"]
    finally:
        if board is not None:
            board.stop()
        chain.close()


def test_store_stopped_fires_once_and_resolves_once(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, hook: Hook) -> None:
    chain = _chain(tmp_path, mosquitto, private_influxd, hook)
    try:
        _running(chain)
        private_influxd.stop()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING"], 20), (hook.bodies, chain.engine.output()[-3000:])
        body = next(b for b in hook.bodies if PIPELINE in str(b.get("title", "")))["message"]
        assert "cannot write to its store" in body and "events wait in its spool" in body, body
        private_influxd.start()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING", "RESOLVED"], 40), chain.engine.output()[-3000:]
        wait_until(lambda: False, 3)
        assert pipeline_states(hook) == ["FIRING", "RESOLVED"]
    finally:
        chain.close()


def test_receiver_broken_the_pipeline_alert_goes_to_the_working_one_once_and_resolves_once(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, hook: Hook, receiver: Receiver) -> None:
    rules = rules_yaml(hook.url).replace(f'  ops: ["{hook.url}"]\n', f'  ops: ["{hook.url}"]\n'
                                         f'  pipeline: ["{receiver.url}"]\n')
    chain = _chain(tmp_path, mosquitto, private_influxd, hook, rules=rules, notify=["pipeline"])
    try:
        _running(chain)
        hook.down()
        chain.edge("hot-1", base=40.0)  # fires too-warm, which cannot reach ops
        assert wait_until(lambda: pipeline_states(receiver) == ["FIRING"], 30), chain.engine.output()[-3000:]
        body = next(b for b in receiver.bodies if PIPELINE in str(b.get("title", "")))["message"]
        assert "notifications to receiver ops" in body and "keep failing" in body, body
        hook.up()
        assert wait_until(lambda: pipeline_states(receiver) == ["FIRING", "RESOLVED"], 40), \
            chain.engine.output()[-3000:]
        assert wait_until(lambda: [str(b.get("title")) for b in hook.bodies] ==
                          ["[FIRING warning] too-warm hot-1/t0/temperature"], 10), hook.bodies
        wait_until(lambda: False, 3)
        assert pipeline_states(receiver) == ["FIRING", "RESOLVED"] and pipeline_states(hook) == []
    finally:
        chain.close()


def test_a_stopped_bridge_raises_the_pipeline_alert_and_no_per_sensor_no_data(
        tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd, hook: Hook) -> None:
    """Vigil's own silence is not the sensors' (issue 19): with the bridge away longer than a no-data
    period while the device keeps sending, one pipeline alert, and no 'has sent nothing' for cold-1,
    neither during the outage nor when the bridge is back; a sensor that really stops still fires."""
    rules = rules_yaml(hook.url) + (
        "  - name: silent\n    match: {metric: temperature}\n    nodata: 6s\n    notify: ops\n"
        "    message: \"{{ device }} has sent nothing for {{ value | duration }}\"\n")
    chain = _chain(tmp_path, mosquitto, private_influxd, hook, rules=rules)

    heard = PersistentRecorder(mosquitto, "vigil/events/cold-1/#", client_id="e2e-heard")

    def silent() -> list[str]:
        return [str(b.get("title", "")) for b in list(hook.bodies) if "silent" in str(b.get("title", ""))]

    try:
        _running(chain)
        # The engine must have heard cold-1 before the bridge goes (a series never heard of has no
        # silence to count): the bridge stores a batch before it publishes it, and was killed between.
        assert wait_until(lambda: len(heard.messages) > 0, 10)
        chain.bridge.kill()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING"], 20), (hook.bodies, chain.engine.output()[-3000:])
        wait_until(lambda: False, 12)  # twice the no-data period with no event reaching the engine
        assert silent() == [], (silent(), chain.engine.output()[-3000:])
        chain.bridge.start()
        assert wait_until(lambda: pipeline_states(hook) == ["FIRING", "RESOLVED"], 30), chain.engine.output()[-3000:]
        wait_until(lambda: False, 8)  # events flow again: cold-1 is heard, nothing fires
        assert silent() == [], (silent(), chain.engine.output()[-3000:])
        chain.kill_edge("cold-1")  # now the sensor really stops: its no-data alert fires, once
        assert wait_until(lambda: len(silent()) == 1, 30), (hook.bodies, chain.engine.output()[-3000:])
        assert "FIRING" in silent()[0], silent()
    finally:
        heard.close()
        chain.close()
