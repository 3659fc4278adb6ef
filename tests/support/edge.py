"""For the edge agent's tests: a recording subscriber with a persistent session, and agents to run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge import EdgeAgent, EdgeConfig
from tests.support import ROOT
from tests.support.services import Mosquitto, wait_until


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """A QoS 1 subscriber with a persistent session, so it misses nothing across broker restarts."""

    def __init__(self, broker: Mosquitto, topic: str = "#", client_id: str = "recorder") -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(5), "the recorder could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def seqs(self, topic: str) -> list[int]:
        return [m.json()["seq"] for m in self.on(topic)]

    def wait(self, check: Callable[[], bool], timeout: float = 10.0) -> bool:
        return wait_until(check, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Mosquitto, topic: str, timeout: float = 5.0) -> Optional[Message]:
    """What a new subscriber gets as the retained message of ``topic``."""
    got: list[Message] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.on_message = lambda c, u, m: got.append(Message(m.topic, m.payload, bool(m.retain)))
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        wait_until(lambda: bool(got), timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1] if got else None


class Agents:
    """Starts in-process agents and agent processes, and stops every one at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[EdgeAgent] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, config: EdgeConfig) -> EdgeAgent:
        agent = EdgeAgent(config)
        agent.start()
        self.running.append(agent)
        return agent

    def spawn(self, config: Optional[dict[str, Any]], *args: str, python: str = sys.executable,
              pythonpath: str = "") -> subprocess.Popen[bytes]:
        """``vigil edge -c edge.yaml ARGS`` (or only ARGS) as its own process (for SIGKILL, another Python)."""
        path = self.tmp_path / f"edge-{len(self.procs)}.yaml"
        path.write_text(yaml.safe_dump(config))
        if config is not None:
            args = ("-c", str(path), *args)
        log = (self.tmp_path / f"edge-{len(self.procs)}.log").open("ab")
        paths = os.pathsep.join(p for p in (pythonpath, str(ROOT)) if p)
        # Its default queue directory (no --queue) in this test's folder, never the home directory's.
        env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        env.update(PYTHONPATH=paths, XDG_STATE_HOME=str(self.tmp_path / "state"))
        proc = subprocess.Popen([python, "-m", "vigil.app.cli", "edge", *args],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.tmp_path / f"edge-{index}.log").read_text()

    def close(self) -> None:
        for agent in self.running:
            agent.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
