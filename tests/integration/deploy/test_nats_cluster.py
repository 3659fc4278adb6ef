"""A clustered broker (docs/scaling.md, The broker as a cluster): three NATS nodes with JetStream and the
MQTT gateway (MQTT 3.1.1), sessions replicated on all three. The edge agent and the bridge start on the
node leading the stream of MQTT sessions (the worst node to lose), the rule engine's two partitions
(--partition 0/2 and 1/2, as docs/scaling.md runs them) one on each other node, each part given all three
addresses. Under load that node is killed (SIGKILL): the agent and the bridge resume their sessions on
another node, every reading the agent queued is stored exactly once, and each alert is notified once, by
the instance that owns its series.

Unlike two separate Mosquittos (test_broker_failover.py), nothing is connected to the other nodes first:
the cluster holds each session, wherever its client connects.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerting.partition import owns
from edge import BufferConfig, EdgeConfig, MqttConfig, simulated_sensor
from edge.agent import EdgeAgent
from tests.support.failover import assert_each_stored_and_notified_once, connected_to, rules_file, stored, stored_keys
from tests.support.nats import NATS_SERVER, NatsCluster
from tests.support.procs import VIGIL, Receiver, VigilProcess
from tests.support.services import wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(NATS_SERVER is None,
                                 reason="nats-server is not installed (bash deploy/setup.sh --dev installs it)")]

# one sensor whose series partition 0/2 owns, one that 1/2 owns
SENSORS = tuple(next(s for s in (f"t{n}" for n in range(64)) if owns(f"pi-1/{s}/temperature", (i, 2)))
                for i in range(2))
INTERVAL = 0.02  # each sensor: 100 readings a second in all (at 200/s the backlog did not always drain in 30 s)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "nats")
    c.start()
    yield c
    c.stop()


def test_killing_the_bridges_nats_node_under_load_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, cluster: NatsCluster, receiver: Receiver, queued: set[tuple[str, int]]) -> None:
    db = tmp_path / "vigil.db"
    config = tmp_path / "vigil.yaml"
    config.write_text('mqtt: {protocol: "3.1.1"}\n')  # NATS speaks 3.1.1 only
    (tmp_path / "bridge").mkdir()
    # The worst case: the node to kill leads the stream of MQTT sessions. The rule engine, partitioned
    # in two as docs/scaling.md runs it, has an instance on each of the other nodes.
    victim = cluster.stream_leader()
    assert victim is not None
    first = cluster.nodes.index(victim)
    rules = rules_file(tmp_path, receiver)
    engines = [VigilProcess([VIGIL, "alerting", "-c", str(config), "--broker", cluster.urls(first + 1 + i),
                             "--store", f"sqlite:///{db}", "--rules", str(rules), "--partition", f"{i}/2",
                             "--state", str(tmp_path / f"alerts-{i}.db"), "--client-id", f"vigil-alerting-n{i}"],
                            tmp_path / f"alerting-{i}.log", cwd=tmp_path) for i in range(2)]
    procs = list(engines)
    agent = None
    try:
        assert wait_until(lambda: all(connected_to(e, cluster.nodes[(first + 1 + i) % 3])
                                      for i, e in enumerate(engines)), timeout=30), \
            "\n".join(e.output()[-1500:] for e in engines)
        bridge = VigilProcess([VIGIL, "bridge", "-c", str(config), "--broker", cluster.urls(first),
                               "--store", f"sqlite:///{db}", "--client-id", "vigil-bridge-n",
                               "--data-dir", str(tmp_path / "bridge")], tmp_path / "bridge.log", cwd=tmp_path)
        procs.append(bridge)
        sensors = tuple(simulated_sensor(name, interval=INTERVAL) for name in SENSORS)
        agent = EdgeAgent(EdgeConfig("pi-1", sensors,
                                     MqttConfig(cluster.urls(first), reconnect_min=0.1, reconnect_max=1.0),
                                     BufferConfig(str(tmp_path / "queue"), sync="batch", batch_interval=0.2,
                                                  drain_rate=20000, max_inflight=100), interval=INTERVAL))
        assert wait_until(lambda: connected_to(bridge, victim), timeout=30), bridge.output()
        agent.start()
        started = time.monotonic()
        assert wait_until(lambda: sum(n for n, _ in stored(db).values()) >= 500, timeout=30), stored(db)
        assert wait_until(lambda: len(receiver.bodies) >= len(SENSORS), timeout=30), receiver.bodies
        assert agent.link is not None and agent.link.broker.port == victim.port

        victim.kill()  # SIGKILL, under load: the node of the agent and the bridge, leading the sessions' stream
        killed, killed_ms = time.monotonic(), time.time() * 1000
        rate = len(queued) / (killed - started)
        others = [n for n in cluster.nodes if n is not victim]
        assert wait_until(lambda: agent is not None and agent.link is not None and agent.link.connected.is_set()
                          and agent.link.broker.port != victim.port, timeout=30)
        agent_moved = time.monotonic() - killed
        assert wait_until(lambda: any(connected_to(bridge, n) for n in others), timeout=30), bridge.output()
        bridge_moved = time.monotonic() - killed
        # a reading taken after the kill is stored
        assert wait_until(lambda: max(ms for _, ms in stored_keys(db)) > killed_ms, timeout=30)
        storing = time.monotonic() - killed
        # caught up (what is queued goes out in the 2 s a stop gives it), on a busy machine too
        assert wait_until(lambda: agent is not None and agent.queue is not None and agent.queue.depth <= 100,
                          timeout=45), agent.queue.depth if agent.queue else None
        caught_up = time.monotonic() - killed
        agent.stop()
        assert agent.queue is not None and agent.queue.depth == 0, "the agent stopped with readings unsent"
        assert_each_stored_and_notified_once(db, queued, receiver, SENSORS)
        for i, sensor in enumerate(SENSORS):  # each alert by the instance that owns its series
            title = f"too-warm pi-1/{sensor}/temperature"
            assert title in engines[i].output() and title not in engines[1 - i].output(), \
                [e.output()[-1500:] for e in engines]
        print(f"NATS failover (killed {victim.name}, the sessions' stream leader): the agent on another node "
              f"{agent_moved:.1f} s after, the bridge {bridge_moved:.1f} s, a reading taken after the kill stored "
              f"{storing:.1f} s, the agent's backlog sent {caught_up:.1f} s; "
              f"{len(queued)} readings stored once; "
              f"{rate:.0f} readings/s queued up to the kill")
    finally:
        if agent is not None:
            agent.stop()
        for p in procs:
            p.stop()


def _client(cluster: NatsCluster, name: str, got: list[str]) -> mqtt.Client:
    """A connected MQTT 3.1.1 client on node 0 that collects the topics it receives."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, msg: got.append(msg.topic)
    client.connect("127.0.0.1", cluster.nodes[0].port)
    client.loop_start()
    assert wait_until(client.is_connected, timeout=10)
    return client


def test_what_the_nats_mqtt_gateway_lacks_as_docs_scaling_says(cluster: NatsCluster) -> None:
    """docs/scaling.md's table: a shared subscription is granted as a literal topic and receives nothing,
    and a '.' in a topic closes the publisher's connection. If NATS changes, change the table."""
    got: list[str] = []
    sub, pub = _client(cluster, "vigil-test-sub", got), _client(cluster, "vigil-test-pub", [])
    try:
        granted: list[int] = []
        sub.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.extend(c.value for c in codes)
        sub.subscribe([("$share/g/t/#", 1), ("d/#", 1)])
        assert wait_until(lambda: len(granted) == 2, timeout=10) and granted == [1, 1]
        pub.publish("t/x", b"1", qos=1).wait_for_publish(10)
        pub.publish("d/plain", b"2", qos=1).wait_for_publish(10)
        assert wait_until(lambda: "d/plain" in got, timeout=10), got
        time.sleep(0.5)
        assert "t/x" not in got  # the "shared" subscription never matched
        closed: list[bool] = []
        pub.on_disconnect = lambda *_args: closed.append(True)
        pub.publish("d/a.b", b"3", qos=1)
        assert wait_until(lambda: bool(closed), timeout=10)  # NATS closed the connection
        time.sleep(0.5)
        assert "d/a.b" not in got
    finally:
        for client in (sub, pub):
            client.loop_stop()
            client.disconnect()
