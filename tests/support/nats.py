"""A private three-node NATS cluster with JetStream and the MQTT gateway, for the clustered-broker test.

Each node is a Debian ``nats-server`` on free loopback ports (client, cluster route, MQTT, monitoring),
with its own JetStream store under the test's directory. ``mqtt { stream_replicas: 3, consumer_replicas: 3 }``
keeps every MQTT session, its queued messages and its consumers on all three nodes, so a client that loses
its node resumes its session on another one (without it the survivors refuse persistent sessions for about
a minute).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.services import Service, free_port, tcp_open, wait_until

__all__ = ["NATS_SERVER", "NatsCluster", "NatsNode"]

# Debian installs it in /usr/sbin, which is not on a normal user's PATH.
NATS_SERVER = shutil.which("nats-server", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")


class NatsNode(Service):
    """One node; ``port`` and ``url`` are its MQTT gateway's, ``http_port`` its monitoring endpoint's."""

    binary = NATS_SERVER or "nats-server"

    def __init__(self, workdir: Path, name: str) -> None:
        super().__init__(workdir)
        self.log = workdir / "nats-server.log"  # not under the binary's full path
        self.name = name
        self.client_port, self.route_port, self.http_port = free_port(), free_port(), free_port()
        self.routes: list[int] = []  # every node's route port, set by the cluster

    def argv(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
        conf.write_text(
            f"server_name: {self.name}\nlisten: 127.0.0.1:{self.client_port}\nhttp: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.workdir}/jetstream" }}\n'
            f"cluster {{ name: vigil, listen: 127.0.0.1:{self.route_port}, routes: [{routes}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.port}, stream_replicas: 3, consumer_replicas: 3 }}\n")
        return [self.binary, "-c", str(conf)]

    def ready(self) -> bool:
        """Its monitoring endpoint answers (the MQTT port opens once JetStream is up: see the cluster)."""
        return tcp_open(self.http_port)

    def monitor(self, path: str) -> Any:
        """The JSON of a monitoring endpoint (``/jsz``, ``/healthz``, ``/connz`` ...); None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as resp:
                return json.load(resp)
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def healthy(self) -> bool:
        """JetStream is up and current here, the meta group has a leader, and the MQTT port is open."""
        health, jsz = self.monitor("/healthz"), self.monitor("/jsz")
        return (bool(health) and health.get("status") == "ok" and bool(jsz)
                and bool((jsz.get("meta_cluster") or {}).get("leader")) and tcp_open(self.port))

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class NatsCluster:
    """``NatsCluster(workdir)``: ``start()`` runs the three nodes and waits until the cluster serves MQTT."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes = [NatsNode(workdir / f"n{i}", f"n{i}") for i in range(size)]
        for node in self.nodes:
            node.routes = [n.route_port for n in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start(timeout)
            if not wait_until(lambda: all(n.healthy() for n in self.nodes), timeout=timeout, interval=0.1):
                raise RuntimeError("the NATS cluster did not elect a JetStream leader and open MQTT within "
                                   f"{timeout:.0f}s:\n" + "\n".join(n.log.read_text()[-1500:] for n in self.nodes))
            self._create_mqtt_streams(timeout)
        except BaseException:
            self.stop()
            raise

    def _create_mqtt_streams(self, timeout: float) -> None:
        """One clean MQTT 3.1.1 CONNECT: the gateway creates its streams, so their leaders are known before
        the parts connect (:meth:`stream_leader`)."""
        client_id = b"vigil-nats-probe"
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
        with socket.create_connection(("127.0.0.1", self.nodes[0].port), timeout=timeout) as conn:
            conn.sendall(bytes([0x10, len(body)]) + body)
            connack = conn.recv(4)
            if connack != b"\x20\x02\x00\x00":
                raise RuntimeError(f"the NATS cluster answered an MQTT CONNECT with {connack!r}")
            conn.sendall(b"\xe0\x00")  # DISCONNECT
        if not wait_until(lambda: self.stream_leader() is not None, timeout=timeout, interval=0.1):
            raise RuntimeError("the NATS cluster's MQTT sessions stream has no leader")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def stream_leader(self, stream: str = "$MQTT_sess") -> NatsNode | None:
        """The node leading a JetStream stream (the MQTT gateway's sessions by default), as a running node sees it."""
        for node in self.nodes:
            if node.running:
                jsz = node.monitor("/jsz?accounts=true&streams=true") or {}
                for account in jsz.get("account_details") or []:
                    for detail in account.get("stream_detail") or []:
                        if detail.get("name") == stream:
                            leader = (detail.get("cluster") or {}).get("leader")
                            return next((n for n in self.nodes if n.name == leader), None)
        return None

    def urls(self, first: int = 0) -> str:
        """Every node's MQTT address, comma-separated for ``--broker``, starting at node ``first``."""
        n = len(self.nodes)
        return ",".join(self.nodes[(first + i) % n].url for i in range(n))
