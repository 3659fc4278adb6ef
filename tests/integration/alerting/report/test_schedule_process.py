"""The real `vigil alerting` process runs the report scheduler: started with a daily report whose last day has
readings in its store, it sends that day's report at once to a local webhook, and only once across a restart."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alerting.report import verify_file
from tests.support.alerting import EngineProcess, Receiver, wait_for
from tests.support.services import Mosquitto
from vigil.core.event import Event
from vigil.core.stores.sqlite import SqliteStore

pytestmark = pytest.mark.integration


def test_the_engine_sends_the_last_day_once_across_a_restart(
        tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver,
        engine_process: Callable[[list[str]], EngineProcess]) -> None:
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (today - dt.timedelta(days=1)).timestamp()
    with SqliteStore(tmp_path / "store.db") as store:
        store.write([Event("freezer-1", "t0", "temperature", -18.0 + (i % 3) * 0.2, yesterday + i * 600, unit="°C")
                     for i in range(144)])
    (tmp_path / "rules.yaml").write_text(f"""receivers:
  hook: ["{receiver.url}"]
reports:
  - {{name: daily, series: [freezer-1/t0/temperature], every: day, at: "00:00", time_zone: UTC,
     formats: [csv], receivers: [hook]}}
""")
    argv = ["alerting", "--broker", mosquitto.url, "--rules", str(tmp_path / "rules.yaml"),
            "--state", str(tmp_path / "alerts.db"), "--data-dir", str(tmp_path),
            "--store", f"sqlite:///{tmp_path / 'store.db'}"]
    engine = engine_process(argv)
    engine.start()
    wait_for(lambda: receiver.bodies, 60, "the report")
    label = (today - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    [body] = receiver.bodies
    assert body["title"] == f"Temperature report daily {label}"
    [attachment] = body["attachments"]
    assert attachment["filename"] == f"daily-{label}.csv"
    kept = tmp_path / "reports" / f"daily-{label}.csv"
    assert base64.b64decode(attachment["base64"]) == kept.read_bytes()
    with SqliteStore(tmp_path / "store.db") as store:
        verdict = verify_file(kept, store, str(tmp_path / "alerts.db"))
    assert verdict.ok, verdict.problems
    wait_for(lambda: f"report daily of {label} sent to hook" in engine.output(), 10, "the log line")
    engine.stop()
    again = engine_process(argv)
    again.start()
    wait_for(lambda: "connected to the broker" in again.output(), 30, "the engine to connect")
    time.sleep(2)
    assert len(receiver.bodies) == 1
