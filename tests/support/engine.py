"""Building engines from YAML text with a manual clock and a recording sink."""

from __future__ import annotations

import textwrap
from typing import Optional

from alerting.engine import Engine
from alerting.rules import load_rules_text
from alerting.state import StateDB
from alerting.transition import Transition
from vigil.core.clock import ManualClock
from vigil.core.event import Event

T0 = 1_700_000_000.0


class Recorder:
    """A sink that keeps what the engine enqueued for delivery."""

    def __init__(self) -> None:
        self.items: list[Transition] = []

    def enqueue(self, t: Transition) -> None:
        self.items.append(t)

    def states(self) -> list[tuple[str, str]]:
        return [(t.state.value, t.series) for t in self.items]


def engine(yaml_text: str, clock: Optional[ManualClock] = None, state: Optional[StateDB] = None,
           **kw: object) -> tuple[Engine, Recorder, ManualClock]:
    rules, _ = load_rules_text(textwrap.dedent(yaml_text), "test.yaml")
    clock = clock or ManualClock(T0)
    sink = Recorder()
    return Engine(rules, state=state, sink=sink, clock=clock, **kw), sink, clock  # type: ignore[arg-type]


def ev(value: float, ts: float, device: str = "freezer-1", sensor: str = "t0", metric: str = "temperature",
       **labels: str) -> Event:
    return Event(device, sensor, metric, value, ts, "°C", labels=tuple(sorted(labels.items())))


def feed(e: Engine, clock: ManualClock, value: float, device: str = "freezer-1", sensor: str = "t0",
         metric: str = "temperature", **labels: str) -> list[Transition]:
    return e.on_event(ev(value, clock.now(), device, sensor, metric, **labels))
