"""A tiny local SMTP server (asyncio, no TLS, no login) that keeps every message it accepts, and its fixture."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest


@dataclass
class SmtpSink:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    server: Any = None

    def url(self, to: str = "boss@example.com") -> str:
        """An apprise mailto:// URL to this sink (plain SMTP, no login)."""
        return f"mailto://127.0.0.1:{self.port}?mode=insecure&from=vigil@example.com&to={to}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender, rcpts = "", []
        try:
            writer.write(b"220 sink ESMTP\r\n")
            while True:
                line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
                verb = line[:4].upper()
                if not line or verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                if verb == "EHLO":
                    writer.write(b"250-sink\r\n250 8BITMIME\r\n")
                elif verb == "MAIL":
                    sender, rcpts = line.partition(":")[2].strip(), []
                    writer.write(b"250 ok\r\n")
                elif verb == "RCPT":
                    rcpts.append(line.partition(":")[2].strip())
                    writer.write(b"250 ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    body = b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in data[:-5].split(b"\r\n"))
                    msg = email.message_from_bytes(body, policy=email.policy.default)
                    assert isinstance(msg, EmailMessage)
                    self.messages.append(msg)
                    self.envelopes.append((sender, rcpts))
                    writer.write(b"250 queued\r\n")
                else:  # HELO, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    sink.server = await asyncio.start_server(sink._handle, "127.0.0.1", 0)
    sink.port = sink.server.sockets[0].getsockname()[1]
    yield sink
    sink.server.close()
    await sink.server.wait_closed()
