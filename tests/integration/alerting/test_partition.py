"""Two real engines with --partition 0/2 and 1/2: every series alerts exactly once, from its owner."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from alerting.partition import owns
from tests.support.alerting import EngineProcess, MqttProbe, wait_for

pytestmark = pytest.mark.integration


def test_two_partitions_split_the_series(tmp_path: Path, mosquitto: Any, probe: MqttProbe,
                                         engine_process: Callable[[list[str]], EngineProcess]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: hot, above: 30}]\n")
    engines = []
    for i in range(2):
        p = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(rules), "--partition", f"{i}/2",
                            "--client-id", f"vigil-alerting-{i}", "--state", str(tmp_path / f"alerts-{i}.db")])
        p.start()
        engines.append(p)
    for p in engines:
        wait_for(lambda p=p: "connected to the broker" in p.output(), what="an engine to connect")
    devices = [f"d{i}" for i in range(20)]
    for d in devices:
        probe.event(d, 40.0)
    wait_for(lambda: len(probe.alerts) == 20, what="20 alerts")
    for d in devices:
        assert probe.states(f"hot/{d}/t0/temperature") == ["firing"]  # once, not twice
    logs = [p.output() for p in engines]
    for d in devices:
        owner = 0 if owns(f"{d}/t0/temperature", (0, 2)) else 1
        assert f"hot/{d}/t0/temperature ok -> firing" in logs[owner]
        assert f"hot/{d}/t0/temperature ok -> firing" not in logs[1 - owner]
