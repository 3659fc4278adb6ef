"""A power cut, as issue 21 measured it: freezers on one rule turn warm at random moments, each reporting
every second; a receiver notes when each freezer was first named in a message. Used by
tests/e2e/test_time_to_person.py and bench/time_to_person.py.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.alerting import Receiver
from tests.support.services import Mosquitto

__all__ = ["COLD", "WARM", "Burst", "Figures", "Freezers", "TimedBodies", "figures", "freezer_rules", "mentions",
           "named", "timed"]

COLD = -18.0
WARM = -8.0
_NAMED = re.compile(r"\[FIRING \w+\] freezer-warm (freezer-\d+)/")


def freezer_rules(*urls: str, grouping: str = "", receivers: str = "") -> str:
    """One rule over every freezer, notifying ``phone`` (its URLs); no ``grouping:`` means the shipped settings."""
    phone = receivers or f"receivers:\n  phone: [{', '.join(json.dumps(u) for u in urls)}]\n"
    return f"""\
{phone}{grouping}
rules:
  - name: freezer-warm
    match: {{metric: temperature, device: "freezer-*"}}
    above: -15
    clear_below: -17
    severity: critical
    notify: phone
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C"
"""


class TimedBodies(list[dict[str, Any]]):
    """The receiver's list of bodies, noting when each arrived (``Receiver`` appends to it from its thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, body: dict[str, Any]) -> None:
        self.times.append(time.time())
        super().append(body)


def timed(receiver: Receiver) -> TimedBodies:
    receiver.bodies = TimedBodies()
    return receiver.bodies


def mentions(body: dict[str, Any]) -> list[str]:
    """The freezers a message names as firing."""
    return list(_NAMED.findall(f"{body.get('title', '')}\n{body.get('message', '')}"))


def named(bodies: TimedBodies) -> dict[str, float]:
    """Each freezer and when a message first named it as firing."""
    out: dict[str, float] = {}
    for at, body in zip(list(bodies.times), list(bodies)):
        for device in mentions(body):
            out.setdefault(device, at)
    return out


class Freezers:
    """``count`` freezers publishing a reading every second from a thread; each turns warm at its moment."""

    def __init__(self, broker: Mosquitto, count: int, spread: float, seed: int = 21, first: int = 0) -> None:
        rng = random.Random(seed)
        self.devices = [f"freezer-{first + i}" for i in range(count)]
        self.warm_after = {d: rng.uniform(0, spread) for d in self.devices}
        self.first_warm: dict[str, float] = {}
        self._stop = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"freezers-{time.monotonic_ns()}")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.started = time.time()
        self.thread = threading.Thread(target=self._run, name="e2e-freezers", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            tick = time.time()
            for d in self.devices:
                warm = tick - self.started >= self.warm_after[d]
                if warm:
                    self.first_warm.setdefault(d, tick)
                body = {"value": WARM if warm else COLD, "ts": tick, "unit": "°C", "seq": seq}
                self.client.publish(f"vigil/readings/{d}/t0", json.dumps(body), qos=1)
            seq += 1
            self._stop.wait(max(0.0, 1.0 - (time.time() - tick)))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


@dataclass(frozen=True)
class Figures:
    """Time from each freezer's first warm reading to the first message naming it, and the messages sent."""

    waits: dict[str, float]
    messages: int
    missing: tuple[str, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.waits.values()) if self.waits else float("nan")

    @property
    def slowest(self) -> float:
        return max(self.waits.values()) if self.waits else float("nan")

    def __str__(self) -> str:
        return (f"{len(self.waits)} of {len(self.waits) + len(self.missing)} freezers told: median "
                f"{_seconds(self.median)}, slowest {_seconds(self.slowest)}, {self.messages} messages")


def _seconds(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def figures(freezers: Freezers, bodies: TimedBodies) -> Figures:
    told = named(bodies)
    waits = {d: told[d] - freezers.first_warm[d] for d in freezers.first_warm if d in told}
    missing = tuple(d for d in freezers.devices if d not in waits)
    return Figures(waits, len(bodies), missing)


class Burst:
    """Run ``Freezers`` until every freezer is named (or ``timeout`` after the last turned warm)."""

    def __init__(self, broker: Mosquitto, bodies: TimedBodies, count: int, spread: float,
                 seed: int = 21) -> None:
        self.broker = broker
        self.bodies = bodies
        self.count = count
        self.spread = spread
        self.seed = seed

    def run(self, timeout: float, settle: float = 0.0) -> Figures:
        freezers = Freezers(self.broker, self.count, self.spread, self.seed)
        try:
            deadline: Optional[float] = None
            while True:
                time.sleep(0.2)
                if len(freezers.first_warm) == self.count and deadline is None:
                    deadline = time.time() + timeout
                if deadline is not None and (set(named(self.bodies)) >= set(freezers.devices)
                                             or time.time() > deadline):
                    break
            time.sleep(settle)  # a late extra message would arrive now
        finally:
            freezers.stop()
        return figures(freezers, self.bodies)
