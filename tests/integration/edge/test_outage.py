"""Store-and-forward through broker outages and agent restarts, against a private Mosquitto."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edge import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
from edge.agent import EdgeAgent
from edge.link import STATUS_MIN_GAP
from tests.support.edge import Agents, Recorder, retained
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration


def test_a_30_second_outage_loses_nothing_and_keeps_order(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    sensors = (simulated_sensor("t0", interval=1), simulated_sensor("t1", interval=1))
    config = EdgeConfig("pi-1", sensors, MqttConfig(mosquitto.url, reconnect_max=2.0),
                        BufferConfig(str(tmp_path / "q"), sync="batch", batch_interval=1.0, drain_rate=10))
    agent = agents.start(config)
    topics = ["vigil/readings/pi-1/t0", "vigil/readings/pi-1/t1"]
    assert recorder.wait(lambda: all(len(recorder.on(t)) >= 2 for t in topics))
    stopped_at = time.time()
    mosquitto.stop()
    time.sleep(30)
    assert agent.queue is not None and agent.queue.depth >= 55  # 2 sensors at 1 Hz, kept on disk
    mosquitto.start()
    assert recorder.wait(lambda: agent.queue is not None and agent.queue.depth <= 2
                         and not agent.forwarder.backlog_pending, timeout=30)  # type: ignore[union-attr]
    agent.stop()
    agents.running.remove(agent)
    assert agent.queue.depth == 0
    for topic in topics:
        messages = [m.json() for m in recorder.on(topic)]
        seqs = [m["seq"] for m in messages]
        assert sorted(set(seqs)) == list(range(max(seqs) + 1)), f"{topic}: a reading is missing"
        assert len(seqs) >= 33
        # QoS 1 is at least once: a publish in flight when the broker went down may come again
        # (the bridge drops it by its seq). Nothing taken during the outage comes twice.
        twice = {m["seq"] for m in messages if seqs.count(m["seq"]) > 1}
        assert all(m["ts"] < stopped_at for m in messages if m["seq"] in twice), twice
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs)), f"{topic}: out of order: {seqs}"
    # About fifteen reconnect attempts, but one log line per change of state.
    link = [r.getMessage().split(" mqtt://")[0] for r in caplog.records if r.name == "edge.link"]
    assert link == ["connected to", "lost the connection to", "cannot reach the broker", "connected to",
                    "disconnected from"], link


def test_a_restart_during_an_outage_delivers_the_buffer_once(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    config = {"device": "pi-1", "mqtt": {"url": mosquitto.url, "reconnect_max": "1s"},
              "buffer": {"path": str(tmp_path / "q"), "sync": "batch", "batch_interval": "200ms"},
              "sensors": [{"name": "t0", "type": "simulated", "interval": "200ms"}]}
    first = agents.spawn(config)
    topic = "vigil/readings/pi-1/t0"
    assert recorder.wait(lambda: len(recorder.on(topic)) >= 3)
    stopped_at = time.time()
    mosquitto.stop()
    time.sleep(2.0)  # about ten readings go to the on-disk queue
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    mosquitto.start()
    before = len(recorder.on(topic))
    agents.spawn(config)
    # Readings resume after the restart; the buffer from before the kill arrives too.
    assert recorder.wait(lambda: len(recorder.on(topic)) >= before + 20, timeout=20)
    messages = [m.json() for m in recorder.on(topic)]
    seqs = [m["seq"] for m in messages]
    assert sorted(set(seqs)) == list(range(max(seqs) + 1)), "a reading is missing"
    buffered = [m["seq"] for m in messages if m["ts"] > stopped_at]
    assert len(buffered) == len(set(buffered)), "a buffered reading arrived twice"
    # Only a publish in flight at the moment the broker stopped may come twice (QoS 1).
    assert len(seqs) - len(set(seqs)) <= 1
    assert max(seqs[:before]) + 5 < max(seqs)


def test_a_full_buffer_drops_the_oldest_counts_and_says_so(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    mosquitto.stop()
    config = EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.05),),
                        MqttConfig(mosquitto.url, reconnect_min=0.1, reconnect_max=0.5),
                        BufferConfig(str(tmp_path / "q"), max_readings=10, sync="always", drain_rate=1000))
    agent = agents.start(config)
    assert wait_until(lambda: agent.queue is not None and agent.queue.dropped >= 20, timeout=10)
    mosquitto.start()
    topic = "vigil/readings/pi-1/t0"
    assert recorder.wait(lambda: len(recorder.on(topic)) >= 15)
    # The status goes out on connect and again (within 2 s) when the drop count changes.
    time.sleep(2.5)
    status = retained(mosquitto, "vigil/status/pi-1")
    assert status is not None
    buffer = status.json()["buffer"]
    seqs = recorder.seqs(topic)
    # Drops happened only while the broker was away, oldest first: what arrived starts where they end.
    assert buffer["dropped"] >= 20 and min(seqs) == buffer["dropped"] == agent.queue.dropped
    assert "oldest readings dropped" in buffer["note"]
    assert sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))


def test_a_drop_while_the_connect_status_goes_out_is_told_in_the_next_status(
        mosquitto: Mosquitto, agents: Agents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sampler drops a reading (a full buffer) just after the status on connect was built: the drop count
    # changed since that status, so a new one must follow within the minimum gap. (A fresh Debian under load
    # once showed dropped=25 in the retained status while the agent had dropped 26.)
    built = EdgeAgent.status
    bumped: list[int] = []

    def status_then_a_drop(self: EdgeAgent, state: str = "online") -> dict[str, Any]:
        body = built(self, state)
        if state == "online" and not bumped and self.queue is not None:
            self.queue._count_drops(1, "a drop in the test")
            bumped.append(self.queue.dropped)
        return body

    monkeypatch.setattr(EdgeAgent, "status", status_then_a_drop)
    config = EdgeConfig("pi-1", (simulated_sensor("t0", interval=1),),
                        MqttConfig(mosquitto.url, reconnect_min=0.1, reconnect_max=0.5),
                        BufferConfig(str(tmp_path / "q"), sync="always"))
    agents.start(config)

    def told() -> bool:
        status = retained(mosquitto, "vigil/status/pi-1", timeout=0.5)
        return bool(bumped) and status is not None and status.json()["buffer"]["dropped"] == bumped[0]

    assert wait_until(told, timeout=3 * STATUS_MIN_GAP), "the drop after the connect status was never told"


def test_live_first_sends_new_readings_before_the_backlog(
        mosquitto: Mosquitto, recorder: Recorder, agents: Agents, tmp_path: Path) -> None:
    config = EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.1),),
                        MqttConfig(mosquitto.url, reconnect_min=0.1, reconnect_max=0.3),
                        BufferConfig(str(tmp_path / "q"), sync="always", drain_rate=5, live_first=True))
    agent = agents.start(config)
    topic = "vigil/readings/pi-1/t0"
    assert recorder.wait(lambda: len(recorder.on(topic)) >= 2)
    mosquitto.stop()
    time.sleep(3)  # about 30 readings buffered
    mosquitto.start()
    assert recorder.wait(lambda: agent.connected and agent.forwarder is not None
                         and not agent.forwarder.backlog_pending, timeout=20)
    seqs = list(dict.fromkeys(recorder.seqs(topic)))
    assert sorted(seqs) == list(range(len(seqs)))
    # Out of order on purpose: newer readings overtook the backlog; each stream kept its order.
    assert seqs != sorted(seqs)
    assert any([s for s in seqs if s < k] == sorted(s for s in seqs if s < k)
               and [s for s in seqs if s >= k] == sorted(s for s in seqs if s >= k) for k in seqs), seqs
