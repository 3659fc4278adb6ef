"""Sampling: intervals, publish-on-change with a heartbeat, and read errors that never become values."""

from __future__ import annotations

import json
import logging

import pytest

from edge.config import EdgeConfig, SensorConfig, simulated_sensor
from edge.errors import SensorError
from edge.queue import MEMORY, ReadingQueue
from edge.sampler import Sampler
from edge.sensors import Sensor
from vigil.core.clock import ManualClock


class Scripted(Sensor):
    """Gives the values (or raises the errors) it was given, one per read."""

    kind = "scripted"

    def __init__(self, name: str, values: list[object]) -> None:
        super().__init__(name)
        self.values = values

    def read(self) -> float:
        value = self.values.pop(0)
        if isinstance(value, SensorError):
            raise value
        assert isinstance(value, float)
        return value


def published(q: ReadingQueue) -> list[tuple[str, float, int]]:
    return [(r.sensor, json.loads(r.payload)["value"], r.seq) for r in q.fetch(0, 10**9, 1000)]


def run(config: EdgeConfig, sensors: dict[str, Sensor], seconds: int) -> tuple[Sampler, ReadingQueue]:
    clock = ManualClock()
    q = ReadingQueue(MEMORY, sync="always", clock=clock)
    sampler = Sampler(config, sensors, q, clock)
    for _ in range(seconds):
        sampler.tick()
        clock.advance(1)
    return sampler, q


def test_each_sensor_on_its_own_interval_with_labels() -> None:
    fast = simulated_sensor("fast", interval=1, labels={"room": "lab"})
    slow = simulated_sensor("slow", interval=5)
    config = EdgeConfig("pi", (fast, slow), labels={"site": "home"})
    sensors = {"fast": Scripted("fast", [1.0] * 10), "slow": Scripted("slow", [2.0] * 2)}
    _, q = run(config, sensors, 10)
    rows = published(q)
    assert [r for r in rows if r[0] == "slow"] == [("slow", 2.0, 0), ("slow", 2.0, 1)]
    assert [r[2] for r in rows if r[0] == "fast"] == list(range(10))
    first = json.loads(q.fetch(0, 10**9, 1)[0].payload)
    assert first["labels"] == {"site": "home", "room": "lab"}
    q.close()


def test_publish_on_change_with_deadband_and_heartbeat() -> None:
    sc = SensorConfig("t", "simulated", None, interval=1, deadband=0.5, heartbeat=4)
    values = [4.0, 4.1, 4.2, 4.6, 4.6, 4.6, 4.6, 4.6, 3.0, 3.1]
    _, q = run(EdgeConfig("pi", (sc,)), {"t": Scripted("t", [float(v) for v in values])}, 10)
    # 4.0 first; 4.6 moved 0.6; 4 s of silence brings a heartbeat; 3.0 moved 1.6.
    assert [(v, s) for _, v, s in published(q)] == [(4.0, 0), (4.6, 1), (4.6, 2), (3.0, 3)]
    q.close()


def test_read_errors_are_counted_and_logged_once_per_streak_never_published(
        caplog: pytest.LogCaptureFixture) -> None:
    crc = SensorError("t", "crc", "CRC check failed (NO)")
    values: list[object] = [1.0, crc, crc, crc, 2.0, SensorError("t", "missing", "gone")]
    sc = simulated_sensor("t", interval=1)
    with caplog.at_level(logging.INFO, logger="edge.sampler"):
        sampler, q = run(EdgeConfig("pi", (sc,)), {"t": Scripted("t", values)}, 6)
    assert [(v, s) for _, v, s in published(q)] == [(1.0, 0), (2.0, 1)]
    state = sampler.states[0]
    assert dict(state.errors) == {"crc": 3, "missing": 1}
    assert state.status()["errors"] == 4 and "gone" in str(state.status()["last_error"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["sensor t: crc: CRC check failed (NO) (1 errors so far)",
                        "sensor t: missing: gone (4 errors so far)"]
    q.close()
