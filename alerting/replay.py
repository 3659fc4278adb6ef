"""Replaying inputs through the engine on a manual clock: the core of rule tests and backtests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional, Union

from alerting.engine import Engine
from alerting.rules import RuleSet
from alerting.transition import Transition, notifiable
from vigil.core.clock import ManualClock
from vigil.core.event import Event

__all__ = ["Replay", "Status", "events_ruleset"]


@dataclass(frozen=True)
class Status:
    """A device status message at ``ts``."""

    device: str
    online: bool
    ts: float


Input = Union[Event, Status]


def events_ruleset(rules: RuleSet) -> RuleSet:
    """The rules with ``source: store`` ones evaluated on the replayed events instead."""
    out = []
    for r in rules.rules:
        if r.spec.source == "store":
            r = dataclasses.replace(r, spec=r.spec.model_copy(update={"source": "events"}))
        out.append(r)
    return RuleSet(tuple(out), rules.notify, rules.files)


class _Collect:
    def __init__(self) -> None:
        self.items: list[Transition] = []

    def enqueue(self, t: Transition) -> None:
        self.items.append(t)


class Replay:
    """Feeds inputs in time order; timers fire at their due times in between. Sends nothing."""

    def __init__(self, rules: RuleSet, start: float) -> None:
        self.clock = ManualClock(start)
        self.sink = _Collect()
        self.engine = Engine(events_ruleset(rules), clock=self.clock, sink=self.sink)
        self.transitions: list[Transition] = []

    def advance(self, t: float) -> None:
        """Move to ``t``, firing every timer due on the way at its own time."""
        if t < self.clock.now():
            return
        for _ in range(1_000_000):  # a guard: every tick moves at least one timer forward
            due = self.engine.next_due()
            if due is None or due > t:
                break
            self.clock.set(max(due, self.clock.now()))
            self.transitions += self.engine.tick()
        else:  # the guard ran out: whatever is still due fires at t
            self.clock.set(t)
            self.transitions += self.engine.tick()
            return
        self.clock.set(t)  # nothing is due by t: a tick here would do nothing (one per replayed reading)

    def feed(self, item: Input) -> None:
        self.advance(item.ts)
        if isinstance(item, Status):
            self.transitions += self.engine.on_status(item.device, item.online)
        else:
            self.transitions += self.engine.on_event(item)

    def run(self, items: Iterable[Input], until: Optional[float] = None) -> None:
        for item in sorted(items, key=lambda i: i.ts):
            self.feed(item)
        if until is not None:
            self.advance(until)

    @property
    def notifications(self) -> list[Transition]:
        """What would have been handed to delivery."""
        return [t for t in self.transitions if notifiable(t)]
