"""A believable simulated series (daily cycle, noise, drift) with faults on a schedule.

Faults make alerts happen in demos and tests. ``at`` counts from the sensor's start:

- ``spike``: ``magnitude`` is added while the fault lasts;
- ``stuck``: the value freezes at the last good one;
- ``dropout``: the sensor gives read errors;
- ``rise``: the value climbs by ``rate`` per minute (a freezer door left open).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from typing import Optional

from vigil.core.clock import Clock

from .._reader import Reader
from ..errors import SensorError
from .base import Sensor

__all__ = ["FAULT_KINDS", "Fault", "Options", "SimulatedSensor", "create", "parse_options"]

DEFAULT_UNIT = "°C"
DEFAULT_METRIC = "temperature"
FAULT_KINDS = ("spike", "stuck", "dropout", "rise")


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: ``kind`` from ``at`` seconds after start, for ``duration`` (None: forever)."""

    kind: str
    at: float
    duration: Optional[float] = None
    magnitude: float = 10.0
    rate: float = 0.5

    def active(self, elapsed: float) -> bool:
        return elapsed >= self.at and (self.duration is None or elapsed < self.at + self.duration)


@dataclass(frozen=True)
class Options:
    """The series: ``base`` ± ``amplitude`` over ``period``, gaussian ``noise``, ``drift`` per hour."""

    base: float = 4.0
    amplitude: float = 1.0
    period: float = 86400.0
    noise: float = 0.05
    drift: float = 0.0
    seed: Optional[int] = None
    faults: tuple[Fault, ...] = field(default_factory=tuple)


def parse_options(r: Reader) -> Optional[Options]:
    base = r.number("base", 4.0)
    amplitude = r.number("amplitude", 1.0, minimum=0)
    period = r.duration("period", 86400.0)
    noise = r.number("noise", 0.05, minimum=0)
    drift = r.number("drift", 0.0)
    seed = r.number("seed", None, integer=True)
    raw = r.raw("faults")
    faults: list[Fault] = []
    if raw is not None and not isinstance(raw, list):
        r.error("faults", "expected a list of faults, e.g. - {kind: rise, at: 60s, rate: 0.5}")
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        fr = Reader(item, (*r.path, "faults", index), r.ctx)
        if fr.ok and "kind" not in fr.data:
            fr.error("kind", f"is required: one of {', '.join(FAULT_KINDS)}")
        kind = fr.choice("kind", FAULT_KINDS, None)
        at = fr.duration("at", 0.0, allow_zero=True)
        duration = fr.duration("duration", None)
        magnitude = fr.number("magnitude", 10.0)
        rate = fr.number("rate", 0.5)
        fr.finish()
        if kind is not None:
            faults.append(Fault(kind, at or 0.0, duration, 10.0 if magnitude is None else magnitude,
                                0.5 if rate is None else rate))
    return Options(
        4.0 if base is None else base, 1.0 if amplitude is None else amplitude, period or 86400.0,
        0.05 if noise is None else noise, drift or 0.0, None if seed is None else int(seed), tuple(faults),
    )


class SimulatedSensor(Sensor):
    """Values from wall time (the daily cycle) and time since start (drift, faults)."""

    kind = "simulated"

    def __init__(self, name: str, options: Options, clock: Clock) -> None:
        super().__init__(name)
        self.options = options
        self.clock = clock
        self.started = clock.monotonic()
        seed = options.seed if options.seed is not None else zlib.crc32(name.encode())
        self.random = random.Random(seed)
        self.last: Optional[float] = None

    def describe(self) -> str:
        faults = ", ".join(f"{f.kind}@{f.at:g}s" for f in self.options.faults)
        return "simulated" + (f" (faults: {faults})" if faults else "")

    def read(self) -> float:
        o = self.options
        elapsed = self.clock.monotonic() - self.started
        value = o.base + o.amplitude * math.sin(2 * math.pi * (self.clock.now() % o.period) / o.period)
        value += o.drift * elapsed / 3600.0 + self.random.gauss(0.0, o.noise)
        for fault in o.faults:
            if not fault.active(elapsed):
                continue
            if fault.kind == "dropout":
                raise SensorError(self.name, "dropout", f"simulated dropout since {fault.at:g}s")
            if fault.kind == "stuck" and self.last is not None:
                return self.last
            if fault.kind == "spike":
                value += fault.magnitude
            elif fault.kind == "rise":
                value += fault.rate * (elapsed - fault.at) / 60.0
        value = round(value, 3)
        self.last = value
        return value


def create(name: str, options: Options, clock: Clock) -> Sensor:
    return SimulatedSensor(name, options, clock)
