"""The narrow boundary to the outside world: a Sender sends one message to a list of URLs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional, Protocol

from alerting.transition import Severity

__all__ = ["RecordingSender", "SendResult", "Sender", "SentMessage"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """``ok`` when every URL took the message; ``error`` says why not, without secrets."""

    ok: bool
    error: Optional[str] = None


class Sender(Protocol):
    async def send(
        self, urls: list[str], title: str, body: str, *, severity: Severity, resolved: bool = False
    ) -> SendResult:
        """Send one message to every URL (already resolved, secrets included)."""


@dataclass(frozen=True, slots=True)
class SentMessage:
    urls: tuple[str, ...]
    title: str
    body: str
    severity: Severity
    resolved: bool


@dataclass
class RecordingSender:
    """An in-memory Sender for tests: records what would have been sent; can fail on purpose."""

    sent: list[SentMessage] = field(default_factory=list)
    attempts: int = 0
    # URLs that fail this many more times before they work (per URL)
    failures: dict[str, int] = field(default_factory=dict)
    # while set, every send waits for it: lets a test stop the world in the middle of a send
    gate: Optional[asyncio.Event] = None
    # per-URL gates: a receiver that hangs while the others answer
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    async def send(
        self, urls: list[str], title: str, body: str, *, severity: Severity, resolved: bool = False
    ) -> SendResult:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        for url in urls:
            if url in self.gates:
                await self.gates[url].wait()
        for url in urls:
            if self.failures.get(url, 0) > 0:
                self.failures[url] -= 1
                return SendResult(False, "HTTP 503 from the test receiver")
        self.sent.append(SentMessage(tuple(urls), title, body, severity, resolved))
        return SendResult(True)

    def titles(self) -> list[str]:
        return [m.title for m in self.sent]
