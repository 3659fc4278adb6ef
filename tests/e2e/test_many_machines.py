"""Issue 7's many machines, end to end: real agents -> one Mosquitto -> two bridges in a shared group ->
influxd, and two rule engines partitioned by series (--partition 0/2 and 1/2) -> one receiver.

One bridge is killed and restarted mid-stream, as a machine of a fleet would be. Each reading is still
stored once, each alert notified once, by the engine that owns its series.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from alerting.partition import owns
from tests.support.chain import Chain, Hook, PersistentRecorder, check_counts, events_advanced, firing, latest, sleep
from tests.support.services import Influxd, Mosquitto, wait_until

pytestmark = pytest.mark.integration

COLD = [f"cold-{i}" for i in range(4)]
HOT = [f"hot-{i}" for i in range(6)]


def test_two_bridges_and_two_partitioned_engines_store_and_notify_each_thing_once(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, hook: Hook, event_seqs: Any) -> None:
    chain = Chain(tmp_path, mosquitto, influxd, influx_db, hook, bridges=2, engines=2)
    recorder = PersistentRecorder(mosquitto, "vigil/events/#", client_id="e2e-events")
    try:
        chain.start()
        for d in COLD:
            chain.edge(d, base=4.0)
        for d in HOT:
            chain.edge(d, base=40.0)
        devices = COLD + HOT
        assert wait_until(lambda: hook.titles() == Counter(firing(d) for d in HOT), 30), hook.bodies
        sleep(2)
        mark = latest(recorder, event_seqs)
        chain.bridges[0].kill()
        sleep(2)
        chain.bridges[0].start()
        assert wait_until(lambda: events_advanced(recorder, event_seqs, devices, mark), 30)

        check_counts(chain, recorder, event_seqs, devices, HOT)
        # Both bridges took a share of the work.
        shares = [b.metric("vigil_bridge_received_total") or 0 for b in chain.bridges]
        assert all(n > 0 for n in shares), shares
        # Each engine holds exactly the series it owns, and both own some.
        for i in range(2):
            with sqlite3.connect(tmp_path / f"alerts-{i}.db") as conn:
                series = {r[0] for r in conn.execute("SELECT series FROM alert_state")}
            conn.close()
            mine = {f"{d}/t0/temperature" for d in HOT if owns(f"{d}/t0/temperature", (i, 2))}
            assert series == mine and mine, (i, series)
    finally:
        recorder.close()
        chain.close()
