"""Fixtures of the notification side's integration tests: a receiver (asyncio) and apprise's thread pools warmed up."""

from __future__ import annotations

from collections.abc import Iterator

import apprise
import pytest

from tests.support.notify import receiver
from tests.support.services import free_port

__all__ = ["receiver"]  # a fixture of tests/support, offered to this folder


@pytest.fixture(scope="session", autouse=True)
def apprise_pools() -> Iterator[None]:
    """Apprise keeps process-wide thread pools alive after a call; start them before the leftover checks count."""
    ap = apprise.Apprise()
    for _ in range(4):
        ap.add(f"json://127.0.0.1:{free_port()}/warm-up")
    ap.notify(body="warm-up", title="warm-up")
    yield
