"""Several brokers (failover): the edge agent, the bridge and the rule engine are given two private
Mosquittos, A then B. Under load, A is killed (SIGKILL): every part goes over to B, every reading the
agent took is stored exactly once, and the alert is notified once.

Persistent sessions live on each broker apart (docs/scaling.md, Several brokers): the bridge and the
engine connect to B once first, so that B queues their messages from the agent's first publish there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
from edge.agent import EdgeAgent
from tests.support.failover import assert_each_stored_and_notified_once, connected_to, rules_file, stored, stored_keys
from tests.support.procs import VIGIL, Receiver, VigilProcess
from tests.support.services import Mosquitto, wait_until

pytestmark = pytest.mark.integration

SENSORS = ("t0", "t1")


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    a, b = Mosquitto(tmp_path / "broker-a"), Mosquitto(tmp_path / "broker-b")
    a.start()
    b.start()
    yield a, b
    for broker in (a, b):
        if broker.running:
            broker.stop()


def test_killing_one_broker_under_load_moves_every_part_to_the_other_and_loses_nothing(
        tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto], receiver: Receiver, queued: set[tuple[str, int]]) -> None:
    a, b = brokers
    rules = rules_file(tmp_path, receiver)
    db = tmp_path / "vigil.db"
    (tmp_path / "bridge").mkdir()

    def bridge(broker: str) -> VigilProcess:
        return VigilProcess([VIGIL, "bridge", "--broker", broker, "--store", f"sqlite:///{db}",
                             "--client-id", "vigil-bridge-f", "--data-dir", str(tmp_path / "bridge")],
                            tmp_path / "bridge.log", cwd=tmp_path)

    def engine(broker: str) -> VigilProcess:
        return VigilProcess([VIGIL, "alerting", "--broker", broker, "--store", f"sqlite:///{db}",
                             "--rules", str(rules), "--state", str(tmp_path / "alerts.db"),
                             "--client-id", "vigil-alerting-f"], tmp_path / "alerting.log", cwd=tmp_path)

    # Their sessions on B first (not pre-created by Vigil: docs/scaling.md).
    procs = [bridge(b.url), engine(b.url)]
    try:
        assert wait_until(lambda: all("connected" in p.output() for p in procs), timeout=30), \
            "\n".join(p.output()[-1500:] for p in procs)
    finally:
        for p in procs:
            p.stop()

    both = f"{a.url},{b.url}"
    procs = [bridge(both), engine(both)]
    sensors = tuple(simulated_sensor(name, interval=0.002) for name in SENSORS)  # up to 1,000 readings a second
    agent = EdgeAgent(EdgeConfig("pi-1", sensors, MqttConfig(both, reconnect_min=0.1, reconnect_max=1.0),
                                 BufferConfig(str(tmp_path / "queue"), sync="batch", batch_interval=0.2,
                                              drain_rate=20000, max_inflight=100), interval=0.002))
    try:
        assert wait_until(lambda: all(connected_to(p, a) for p in procs), timeout=30), \
            "\n".join(p.output()[-1500:] for p in procs)
        agent.start()
        started = time.monotonic()
        assert wait_until(lambda: sum(n for n, _ in stored(db).values()) >= 400, timeout=30), stored(db)
        assert wait_until(lambda: len(receiver.bodies) >= len(SENSORS), timeout=30), receiver.bodies
        assert agent.link is not None and agent.link.broker.port == a.port

        a.kill()  # SIGKILL, under load
        killed = time.monotonic()
        rate = len(queued) / (killed - started)
        taken_before = sum(int(s["readings"]) for s in agent.sampler.status()) if agent.sampler else 0
        assert wait_until(lambda: agent.link is not None and agent.link.connected.is_set()
                          and agent.link.broker.port == b.port, timeout=15)
        assert wait_until(lambda: all(connected_to(p, b) for p in procs), timeout=15), \
            "\n".join(p.output()[-1500:] for p in procs)
        moved = time.monotonic() - killed
        before = sum(n for n, _ in stored(db).values())
        assert wait_until(lambda: sum(n for n, _ in stored(db).values()) >= before + 400, timeout=30)
        # caught up (what is queued goes out in the 2 s a stop gives it), on a busy machine too
        assert wait_until(lambda: agent.queue is not None and agent.queue.depth <= 100, timeout=30)
    finally:
        agent.stop()
    try:
        assert agent.queue is not None and agent.queue.depth == 0, "the agent stopped with readings unsent"
        assert agent.sampler is not None
        taken = {s["name"]: s["readings"] for s in agent.sampler.status()}
        assert sum(taken.values()) >= taken_before + 400, (taken_before, taken)  # as many again after the kill
        assert_each_stored_and_notified_once(db, queued, receiver, SENSORS)
        print(f"failover: every part on B {moved:.1f} s after A was killed; {len(queued)} readings stored once; "
              f"{rate:.0f} readings/s queued up to the kill")
    finally:
        for p in procs:
            p.stop()


def test_two_mosquittos_bridged_as_docs_scaling_says_carry_readings_between_parts_on_either(
        tmp_path: Path, receiver: Receiver, queued: set[tuple[str, int]]) -> None:
    """A part that reached B while the others are on A still gets everything: docs/scaling.md's bridge section."""
    b = Mosquitto(tmp_path / "broker-b")
    a = Mosquitto(tmp_path / "broker-a", extra_config=(
        f"connection vigil-b\naddress 127.0.0.1:{b.port}\nremote_clientid vigil-broker-a\n"
        "topic vigil/# both 1\ncleansession false\ntry_private true\nnotifications false\n"))
    b.start()
    try:
        a.start()
    except BaseException:
        b.stop()
        raise
    rules = rules_file(tmp_path, receiver)
    db = tmp_path / "vigil.db"
    # the bridge on B (listed first), the engine and the agent on A
    procs = [VigilProcess([VIGIL, "bridge", "--broker", f"{b.url},{a.url}", "--store", f"sqlite:///{db}",
                           "--client-id", "vigil-bridge-f", "--data-dir", str(tmp_path)],
                          tmp_path / "bridge.log", cwd=tmp_path),
             VigilProcess([VIGIL, "alerting", "--broker", f"{a.url},{b.url}", "--rules", str(rules),
                           "--state", str(tmp_path / "alerts.db"), "--client-id", "vigil-alerting-f"],
                          tmp_path / "alerting.log", cwd=tmp_path)]
    agent = EdgeAgent(EdgeConfig("pi-1", (simulated_sensor("t0", interval=0.05),),
                                 MqttConfig(f"{a.url},{b.url}"), BufferConfig(str(tmp_path / "queue")), interval=0.05))
    try:
        assert wait_until(lambda: connected_to(procs[0], b) and connected_to(procs[1], a), timeout=30), \
            "\n".join(p.output()[-1500:] for p in procs)
        assert wait_until(lambda: "as vigil-broker-a" in b.log.read_text(errors="replace"), timeout=30)  # A's bridge
        agent.start()
        assert wait_until(lambda: stored(db).get("t0", (0, 0))[0] >= 40, timeout=30), stored(db)
        assert wait_until(lambda: len(receiver.bodies) >= 1, timeout=30)  # the bridge's events reached A's engine
        assert agent.link is not None and agent.link.broker.port == a.port
        agent.stop()
        assert agent.queue is not None and agent.queue.depth == 0 and agent.sampler is not None
        assert wait_until(lambda: set(stored_keys(db)) == queued, timeout=20), (len(stored_keys(db)), len(queued))
        assert max(stored_keys(db).values()) == 1
        time.sleep(1.0)  # a second notification, if any, would arrive now
        assert [body["title"] for body in receiver.bodies] == ["[FIRING warning] too-warm pi-1/t0/temperature"]
    finally:
        agent.stop()
        for p in procs:
            p.stop()
        a.stop()
        b.stop()
