"""A local HTTP receiver for apprise's ``json://`` notifications (asyncio), and its fixture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest


@dataclass
class Receiver:
    """Answers POSTs: ``fail`` more times with HTTP 500, then 200; keeps every JSON body it accepted."""

    port: int = 0
    fail: int = 0
    # while set, requests are read and counted but not answered until it is set (a hanging service)
    hang: Optional[asyncio.Event] = None
    received: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    requests: int = 0
    server: Any = None

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
            body = await reader.readexactly(length)
            self.requests += 1
            if self.hang is not None:
                await self.hang.wait()
                return
            if self.fail > 0:
                self.fail -= 1
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                self.raw.append((lines[0], body))
                if body.startswith(b"{"):
                    payload = json.loads(body)
                    payload["path"] = lines[0].split()[1]
                    self.received.append(payload)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.server = await asyncio.start_server(r._handle, "127.0.0.1", 0)
    r.port = r.server.sockets[0].getsockname()[1]
    yield r
    r.server.close()
    await r.server.wait_closed()
