"""Fixtures of the end-to-end tests: the notification receiver that can go down, and a count of event seqs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.chain import Hook, PersistentRecorder


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.down()


@pytest.fixture
def event_seqs() -> Any:
    """(device, seq) of every event a recorder saw, with how many times."""

    def count(recorder: PersistentRecorder) -> Counter[tuple[str, int]]:
        with recorder.lock:
            msgs = list(recorder.messages)
        out: Counter[tuple[str, int]] = Counter()
        for m in msgs:
            body = json.loads(m.payload)
            if "seq" in body:
                out[(body["device"], int(body["seq"]))] += 1
        return out

    return count
