"""A state file with an engine side (Outbox) and a Dispatcher on a ManualClock with a RecordingSender."""

from __future__ import annotations

import itertools
import random
import sqlite3
from pathlib import Path
from typing import Any, Optional

from alerting.notify import Dispatcher, NotifyConfig, Outbox, RecordingSender
from alerting.transition import AlertState, Severity, Transition
from vigil.core.clock import ManualClock

START = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
_ids = itertools.count(1)


def transition(rule: str = "freezer-warm", series: str = "freezer-1/t0/temperature",
               state: AlertState = AlertState.FIRING, previous: Optional[AlertState] = None, *,
               at: float = START, severity: Severity = Severity.CRITICAL, message: str = "",
               value: Optional[float] = -12.5, labels: Optional[dict[str, str]] = None,
               notify: tuple[str, ...] = ("staff",)) -> Transition:
    prev = previous or (AlertState.PENDING if state is AlertState.FIRING else AlertState.FIRING)
    return Transition(
        id=f"t{next(_ids)}", rule=rule, series=series, state=state, previous=prev, at=at, severity=severity,
        message=message or f"{series.split('/')[0]} is at {value} °C", since=at, value=value,
        labels=tuple(sorted((labels or {}).items())), notify=notify)


def config(**overrides: Any) -> NotifyConfig:
    data: dict[str, Any] = {
        "receivers": {"staff": ["json://127.0.0.1:9/staff"], "manager": ["json://127.0.0.1:9/manager"]},
        "grouping": {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
    }
    data.update(overrides)
    return NotifyConfig.model_validate(data)


class Harness:
    def __init__(self, path: Path, cfg: Optional[NotifyConfig] = None, *, start: float = START,
                 sender: Optional[RecordingSender] = None, env: Optional[dict[str, str]] = None) -> None:
        self.env = env if env is not None else {}
        self.path = path
        self.clock = ManualClock(start)
        self.sender = sender or RecordingSender()
        self.config = cfg or config()
        self.engine = sqlite3.connect(str(path))
        self.outbox = Outbox(self.engine)
        self.outbox.create_tables()
        self.engine.commit()
        self.dispatcher = self.new_dispatcher()

    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.path, self.config, self.sender, self.clock, env=self.env, rng=random.Random(7))

    def restart(self) -> None:
        self.dispatcher.close()
        self.dispatcher = self.new_dispatcher()

    def enqueue(self, *ts: Transition) -> None:
        for t in ts:
            self.outbox.enqueue(t)
        self.engine.commit()

    async def at(self, seconds: float) -> None:
        """Move the clock to START + seconds and run one pass."""
        self.clock.set(START + seconds)
        await self.dispatcher.step()

    def titles(self) -> list[str]:
        return self.sender.titles()

    def close(self) -> None:
        self.dispatcher.close()
        self.engine.close()
