"""A front that makes a real Mosquitto an MQTT 3.1.1-only broker, for the edge's protocol fallback.

Mosquitto has no setting to refuse MQTT 5. This front listens on its own loopback port and reads
each connection's CONNECT. A 3.1.1 CONNECT is passed on, with everything after it in both
directions, to the real Mosquitto, which does all the broker's work. An MQTT 5 CONNECT is
handled as a 3.1.1-only broker does:

- ``refuse``: CONNACK with return code 1, "unacceptable protocol level", then close (what
  [MQTT-3.1.2-2] asks of a 3.1.1 server, and what amqtt sends);
- ``silent``: no answer; the connection stays open until the client gives up (what the edge met
  with ``vigil up``'s embedded amqtt, which cannot read an MQTT 5 CONNECT's properties).
"""

from __future__ import annotations

import socket
import threading
from typing import Optional

__all__ = ["Mqtt311Front"]

CONNACK_UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"


class Mqtt311Front:
    """``Mqtt311Front(mosquitto.port, on_v5)``; ``port`` is where clients connect; ``close()`` at the end."""

    def __init__(self, upstream_port: int, on_v5: str = "refuse") -> None:
        assert on_v5 in ("refuse", "silent")
        self.upstream_port = upstream_port
        self.on_v5 = on_v5
        self.v5_connects = 0
        self.v311_connects = 0
        self._closing = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = int(self._server.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._spawn(self._accept, "mqtt311-accept")

    def close(self) -> None:
        self._closing.set()
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive()]
            if not pending:
                break
            for thread in pending:
                thread.join(5)
        self._server.close()

    # -- internals ----------------------------------------------------------------------

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            conn.settimeout(0.1)
            self._spawn(self._serve, "mqtt311-conn", conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            packet = self._read_packet(conn)
            if packet is None:
                return
            if _protocol_level(packet) == 5:
                self.v5_connects += 1
                if self.on_v5 == "refuse":
                    conn.sendall(CONNACK_UNACCEPTABLE_PROTOCOL)
                else:
                    while self._recv(conn) != b"":  # until the client hangs up (or the front closes)
                        pass
                return
            self.v311_connects += 1
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5) as up:
                up.settimeout(0.1)
                up.sendall(packet)
                self._spawn(self._pipe, "mqtt311-up", conn, up)
                self._pipe(up, conn)
        except OSError:
            return
        finally:
            conn.close()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = self._recv(source)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _recv(self, conn: socket.socket) -> bytes:
        """The next bytes; b"" when the peer closed or the front is closing."""
        while not self._closing.is_set():
            try:
                return conn.recv(65536)
            except socket.timeout:
                continue
        return b""

    def _read_packet(self, conn: socket.socket) -> Optional[bytes]:
        """The first MQTT packet: fixed header, remaining length (varint), body."""
        data = b""
        while True:
            if len(data) >= 2:
                length, multiplier, i = 0, 1, 1
                while i < len(data):
                    length += (data[i] & 0x7F) * multiplier
                    multiplier *= 128
                    if not data[i] & 0x80:
                        if len(data) >= i + 1 + length:
                            return data
                        break
                    i += 1
            chunk = self._recv(conn)
            if not chunk:
                return None
            data += chunk


def _protocol_level(packet: bytes) -> int:
    """A CONNECT's protocol level (4: 3.1.1, 5: MQTT 5), read after the fixed header and the name."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    body = packet[i + 1:]
    name_length = int.from_bytes(body[:2], "big")
    return body[2 + name_length]
