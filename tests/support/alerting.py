"""A local HTTP receiver for apprise json:// notifications (and its fixture), a heartbeat's ping counter (and its
fixture), an MQTT test client, and a real engine process."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import paho.mqtt.client as paho
import pytest

from tests.support import ROOT
from tests.support.services import ChildProcess, free_port


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it (apprise json://)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []  # when each of bodies came (time.time())
        self.fail_first = fail_first
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                receiver.times.append(time.time())
                receiver.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def texts(self) -> list[str]:
        return [f"{b.get('title', '')}\n{b.get('message', '')}" for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(5)


class Pings:
    """An HTTP server on 127.0.0.1 that counts GETs (a heartbeat's push URL) and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.paths: list[str] = []
        pings = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pings.paths.append(self.path)
                self.send_response(pings.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-pings", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/secret-uuid"


@pytest.fixture
def pings() -> Iterator[Pings]:
    p = Pings()
    yield p
    p.server.shutdown()
    p.server.server_close()
    p.thread.join(5)


class MqttProbe:
    """A paho client that records retained alert states and publishes test events."""

    def __init__(self, port: int, root: str = "vigil") -> None:
        self.root = root
        self.alerts: dict[str, list[dict[str, Any]]] = {}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"probe-{os.getpid()}-{time.time()}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{root}/alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        key = msg.topic[len(self.root) + len("/alerts/"):]
        body = json.loads(msg.payload) if msg.payload else {}
        self.alerts.setdefault(key, []).append(body)

    def event(self, device: str, value: float, ts: Optional[float] = None, sensor: str = "t0",
              metric: str = "temperature") -> None:
        body = {"device": device, "sensor": sensor, "metric": metric, "value": value,
                "ts": ts if ts is not None else time.time(), "unit": "°C"}
        self.client.publish(f"{self.root}/events/{device}/{metric}", json.dumps(body), qos=1).wait_for_publish(5)

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def states(self, key: str) -> list[str]:
        return [b.get("state", "") for b in self.alerts.get(key, [])]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class EngineProcess(ChildProcess):
    """``vigil alerting`` as a real child process."""

    def __init__(self, argv: list[str], log: Path) -> None:
        super().__init__([sys.executable, "-m", "vigil.app.cli", *argv], log, cwd=ROOT, grace=10)


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
