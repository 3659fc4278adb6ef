"""The edge agent: a sampler thread fills the queue, a link thread empties it into the broker."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from vigil import __version__
from vigil.core.clock import Clock, SystemClock

from .config import EdgeConfig
from .forwarder import Forwarder
from .homeassistant import discovery_messages
from .link import MqttLink
from .queue import MEMORY, ReadingQueue, default_directory
from .sampler import Sampler
from .sensors import Sensor, build_sensor

__all__ = ["EdgeAgent", "system_uptime"]

log = logging.getLogger(__name__)


def system_uptime(path: str = "/proc/uptime") -> Optional[int]:
    """Seconds since the machine booted (Linux), for the status message; None where it cannot be read."""
    try:
        with open(path, "rb") as f:
            return round(float(f.read(64).split()[0]))
    except (OSError, ValueError, IndexError, OverflowError):
        return None


class EdgeAgent:
    """Reads sensors and delivers every reading; ``start()`` returns at once, ``stop()`` joins all."""

    def __init__(self, config: EdgeConfig, clock: Optional[Clock] = None,
                 sensors: Optional[dict[str, Sensor]] = None, env: Optional[dict[str, str]] = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.env = env
        self._sensors = sensors
        self._stop = threading.Event()
        self._stop_sampling = threading.Event()
        self._threads: list[threading.Thread] = []
        self.queue: Optional[ReadingQueue] = None
        self.sampler: Optional[Sampler] = None
        self.forwarder: Optional[Forwarder] = None
        self.link: Optional[MqttLink] = None
        self.failure: Optional[BaseException] = None

    def start(self) -> None:
        """Open the queue, build the sensors and start the sampler and link threads."""
        if self._threads:
            raise RuntimeError("the agent is already running")
        c = self.config
        b = c.buffer
        self.queue = ReadingQueue(b.path or default_directory(self.env), max_readings=b.max_readings,
                                  max_age=b.max_age, sync=b.sync, batch_interval=b.batch_interval, clock=self.clock,
                                  owner=f"device {c.device}")
        sensors = self._sensors or {s.name: build_sensor(s.kind, s.name, s.options, self.clock) for s in c.sensors}
        self.sampler = Sampler(c, sensors, self.queue, self.clock)
        self.forwarder = Forwarder(self.queue, self.clock, b.max_inflight, b.drain_rate, b.live_first)
        self.link = MqttLink(c, self.forwarder, self.clock, self._stop, self.status, self._fingerprint,
                             lambda: discovery_messages(c), self.env)
        self._stop.clear()
        self._stop_sampling.clear()
        q = self.queue
        if q.in_memory:
            log.warning("vigil edge %s: device %s, %d sensors, queue in memory (%s): readings not sent by the "
                        "time the agent stops are lost; leave out --queue :memory: to keep them on disk",
                        __version__, c.device, len(c.sensors), MEMORY)
        else:
            log.info("vigil edge %s: device %s, %d sensors, queue %s (on disk, sync %s)", __version__, c.device,
                     len(c.sensors), q.path, b.sync)
            if q.depth:
                log.info("%s in %s (left from the last run); they are sent when the broker answers",
                         _waiting(q.depth), q.path)
        self._threads = [
            threading.Thread(target=self._guard, args=(self._sample_loop,), name=f"vigil-edge-sampler-{c.device}"),
            threading.Thread(target=self._guard, args=(self.link.run,), name=f"vigil-edge-link-{c.device}"),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sampling, send what is queued (briefly), say offline and join every thread."""
        self._stop_sampling.set()
        # The sampler goes first and commits its last batch, so the link can still send it.
        for thread in self._threads[:1]:
            thread.join()
        self._stop.set()
        for thread in self._threads[1:]:
            thread.join()
        self._threads = []
        if self.queue is not None:
            self._say_what_is_left(self.queue)
            self.queue.close()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the agent stops (or a thread failed); True if it did."""
        return self._stop.wait(timeout)

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected.is_set()

    def status(self, state: str = "online") -> dict[str, Any]:
        """The status message's body: what a person checking on the device wants to know."""
        body: dict[str, Any] = {"state": state, "device": self.config.device, "version": __version__,
                                "ts": round(self.clock.now(), 3)}
        uptime = system_uptime()
        if uptime is not None:
            body["uptime"] = uptime
        if self.queue is not None and self.sampler is not None:
            body["interval"] = self.config.interval
            body["sensors"] = self.sampler.status()
            oldest = self.queue.oldest_ts()
            body["buffer"] = {
                "depth": self.queue.depth, "dropped": self.queue.dropped,
                "max_readings": self.queue.max_readings, "sync": self.queue.sync,
                "oldest_age": None if oldest is None else round(self.clock.now() - oldest, 1),
            }
            if self.queue.dropped:
                body["buffer"]["note"] = (f"the buffer was full or readings were too old: "
                                          f"{self.queue.dropped} oldest readings dropped")
        if self.forwarder is not None:
            body["rejected"] = self.forwarder.rejected
        return body

    @staticmethod
    def _say_what_is_left(q: ReadingQueue) -> None:
        """On stop: how many readings the broker has not acknowledged, and where they are."""
        if q.in_memory:
            if q.depth:
                log.warning("%d reading%s not sent and lost: the queue was in memory (%s)", q.depth,
                            "" if q.depth == 1 else "s", MEMORY)
        elif q.depth:
            log.info("%s in %s; they are sent when the broker answers", _waiting(q.depth), q.path)
        else:
            log.info("every reading was sent; the queue %s is empty", q.path)

    def _fingerprint(self) -> tuple[int, ...]:
        assert self.queue is not None and self.sampler is not None
        return (self.queue.dropped, self.sampler.errors_total)

    def _sample_loop(self) -> None:
        assert self.sampler is not None and self.queue is not None
        try:
            while not self._stop_sampling.is_set() and not self._stop.is_set():
                wait = self.sampler.tick()
                self.queue.tick()
                # Wake for the group commit too, so a batch never waits for a slow sensor.
                self._stop_sampling.wait(min(wait, self.queue.batch_interval))
        finally:
            self.queue.flush()

    def _guard(self, target: Any) -> None:
        try:
            target()
        except BaseException as exc:
            log.exception("vigil edge: %s stopped on an unexpected error", threading.current_thread().name)
            self.failure = exc
            self._stop_sampling.set()
            self._stop.set()


def _waiting(n: int) -> str:
    return "1 reading waits" if n == 1 else f"{n} readings wait"
