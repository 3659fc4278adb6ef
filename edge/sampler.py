"""Reads each sensor on its own interval and queues what should be published.

Publish-on-change: with a ``deadband`` a reading is queued only when it moved at least that
far from the last one published, or when ``heartbeat`` (5 minutes by default) has passed.
A read error is logged (once per streak), counted and reported; it is never a value.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from vigil.core.clock import Clock
from vigil.core.topics import Topics

from .config import EdgeConfig, SensorConfig
from .errors import SensorError
from .payload import build_payload
from .queue import ReadingQueue
from .sensors import Sensor

__all__ = ["DEFAULT_HEARTBEAT", "Sampler", "SensorState"]

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 300.0


@dataclass
class SensorState:
    """What the agent knows about one sensor, for scheduling and the status message."""

    config: SensorConfig
    sensor: Sensor
    interval: float
    next_due: float
    readings: int = 0
    published: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: Optional[str] = None
    last_value: Optional[float] = None
    last_published: Optional[float] = None
    last_published_at: Optional[float] = None

    def status(self) -> dict[str, object]:
        return {
            "name": self.config.name, "type": self.config.kind, "metric": self.config.metric,
            "unit": self.config.unit, "interval": self.interval, "readings": self.readings,
            "errors": sum(self.errors.values()), "error_reasons": dict(self.errors),
            "last_error": self.last_error, "last_value": self.last_value,
        }


class Sampler:
    """Schedules sensor reads; ``tick()`` reads what is due and says how long to wait."""

    def __init__(self, config: EdgeConfig, sensors: dict[str, Sensor], queue: ReadingQueue, clock: Clock) -> None:
        self.config = config
        self.queue = queue
        self.clock = clock
        self.topics = Topics(config.mqtt.root)
        now = clock.monotonic()
        self.states = [
            SensorState(sc, sensors[sc.name], config.interval_of(sc), now) for sc in config.sensors
        ]
        # The link thread reads the figures for the status message while this one updates them.
        self._lock = threading.Lock()
        self.errors_total = 0

    def status(self) -> list[dict[str, object]]:
        """Each sensor's figures for the status message."""
        with self._lock:
            return [s.status() for s in self.states]

    def tick(self) -> float:
        """Read every sensor that is due; return the seconds until the next one is."""
        for state in self.states:
            if self.clock.monotonic() >= state.next_due:
                self._sample(state)
                state.next_due += state.interval
                # After a long stall (suspend, a slow command) start afresh instead of catching up.
                if state.next_due <= self.clock.monotonic():
                    state.next_due = self.clock.monotonic() + state.interval
        return max(0.0, min(s.next_due for s in self.states) - self.clock.monotonic())

    def _sample(self, state: SensorState) -> None:
        sc = state.config
        try:
            value = state.sensor.read()
        except SensorError as exc:
            with self._lock:
                state.errors[exc.reason] += 1
                self.errors_total += 1
            # One warning per streak of the same error; the count goes in the status message.
            level = logging.DEBUG if state.last_error == str(exc) else logging.WARNING
            log.log(level, "%s (%d errors so far)", exc, sum(state.errors.values()))
            state.last_error = str(exc)
            return
        if state.last_error is not None:
            log.info("sensor %s: reads again (%g %s)", sc.name, value, sc.unit)
            state.last_error = None
        with self._lock:
            state.readings += 1
            state.last_value = value
        now = self.clock.monotonic()
        if not self._should_publish(state, value, now):
            return
        ts = self.clock.now()
        labels = {**self.config.labels, **sc.labels}
        topic = self.topics.readings(self.config.device, sc.name)
        self.queue.put(sc.name, topic, ts, lambda seq: build_payload(value, ts, sc.unit, sc.metric, seq, labels))
        state.published += 1
        state.last_published = value
        state.last_published_at = now

    def _should_publish(self, state: SensorState, value: float, now: float) -> bool:
        deadband = state.config.deadband
        if deadband is None or state.last_published is None or state.last_published_at is None:
            return True
        heartbeat = state.config.heartbeat if state.config.heartbeat is not None else DEFAULT_HEARTBEAT
        return abs(value - state.last_published) >= deadband or now - state.last_published_at >= heartbeat
