"""What every condition sees and answers: the series' recent samples at a point in time."""

from __future__ import annotations

import abc
import math
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, cast

import numpy as np

__all__ = ["Condition", "Ctx", "SeriesData", "finite"]

# Bounds the memory of one series whatever the windows of the rules that watch it.
MAX_SAMPLES = 20_000
_NO_CELLS: dict[str, tuple[int, int]] = {}
# the layouts of SeriesData.memo, one per set of conditions (not one per series)
_LAYOUTS: dict[tuple[tuple[str, tuple[int, int]], ...], dict[str, tuple[int, int]]] = {}


def finite(x: Any) -> float:
    """A number read back from saved learned state (ValueError when it is not a finite number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return float(x)


@dataclass(slots=True)
class SeriesData:
    """One series as the engine knows it: identity, last value, when last heard, recent samples.

    ``received``: the engine's clock when the latest reading arrived (not its source time); ``changed``:
    the source time of the latest reading whose value differed from the one before (None: none seen yet).
    """

    id: str
    device: str
    sensor: str
    metric: str
    labels: tuple[tuple[str, str], ...] = ()
    unit: str = ""
    value: Optional[float] = None
    ts: Optional[float] = None
    last_seen: Optional[float] = None
    online: Optional[bool] = None
    keep: float = 0.0
    samples: Optional[deque[tuple[float, float]]] = None
    received: Optional[float] = None
    changed: Optional[float] = None
    #: what conditions keep about the series between readings (stale's intervals, a forecast's slots, ...):
    #: one array of doubles per series, each condition's cells at the offset ``layout`` gives for its key
    #: (:meth:`state`); a layout is shared by every series with the same conditions
    memo: Optional[array[float]] = None
    layout: Optional[dict[str, tuple[int, int]]] = None
    #: the history the store refill gave after a restart, (ts, value) rows, for conditions that keep their
    #: own summary (:attr:`Condition.history`); dropped once older than the span it covers
    seeded: Optional[np.ndarray] = None

    def add(self, ts: float, value: float, seen: float, received: Optional[float] = None) -> None:
        """Record a sample; keep only what the longest window of the rules watching it needs."""
        if self.value is not None and value != self.value:
            self.changed = ts
        self.received = seen if received is None else received
        # the latest value is the latest received (the bridge publishes a series in order), so one
        # reading with a wrong clock far in the future cannot freeze the series
        self.value, self.ts = value, ts
        self.last_seen = seen if self.last_seen is None else max(self.last_seen, seen)
        seeded = self.seeded
        if seeded is not None and ts - seeded[-1, 0] > seeded[-1, 0] - seeded[0, 0]:
            self.seeded = None  # older than any window it was read for
        if self.keep <= 0:
            return
        if self.samples is None:
            self.samples = deque(maxlen=MAX_SAMPLES)
        samples = self.samples
        if samples and ts < samples[-1][0]:
            # late sample: insert in order (rare; the bridge publishes in order per series)
            items = sorted([*samples, (ts, value)])
            samples.clear()
            samples.extend(items)
        else:
            samples.append((ts, value))
        horizon = self.ts - self.keep if self.ts is not None else ts
        while samples and samples[0][0] < horizon:
            samples.popleft()

    def seed(self, points: list[tuple[float, float]]) -> None:
        """Fill the window with stored history (after a restart); when last heard is left alone.

        The points are also kept, as an array, in ``seeded`` for conditions that keep their own summary of
        the series (:attr:`Condition.history`), until they are older than the span they cover."""
        if not points:
            return
        self.seeded = np.asarray(sorted(points), dtype=float)
        if self.keep <= 0:
            return
        merged = sorted({*points, *(self.samples or ())})
        if self.samples is None:
            self.samples = deque(maxlen=MAX_SAMPLES)
        self.samples.clear()
        self.samples.extend(merged[-MAX_SAMPLES:])
        if self.value is None:
            self.ts, self.value = merged[-1]

    def state(self, key: str, init: Callable[[], array[float]]) -> tuple[memoryview[float], bool]:
        """The cells (doubles) a condition keeps under ``key`` (its kind and parameters), writable; created
        from ``init()`` (an array of doubles) the first time (then True)."""
        layout = self.layout or _NO_CELLS
        cells = layout.get(key)
        created = cells is None
        if cells is None:
            first = init()
            cells = (len(self.memo or ()), len(first))
            items = (*layout.items(), (key, cells))
            self.layout = _LAYOUTS.setdefault(items, dict(items))
            self.memo = (self.memo or array("d")) + first
        assert self.memo is not None
        view = cast("memoryview[float]", memoryview(self.memo))  # (typeshed calls every memoryview int)
        return view[cells[0]:cells[0] + cells[1]], created

    def window(self, start: float, end: float) -> list[tuple[float, float]]:
        """Samples with start < ts <= end."""
        return [s for s in (self.samples or ()) if start < s[0] <= end]


@dataclass(slots=True)
class Ctx:
    """An evaluation: the alert's series, the time, other series by id, and per-alert scratch state.

    ``resumed``: when the engine's input came back after it could not hear it (None: always could);
    ``grace``: the settings' ``device_reconnect_grace``; ``known``: every series the engine knows, by id.
    """

    at: float
    series: SeriesData
    lookup: Callable[[str], Optional[SeriesData]]
    scratch: dict[str, Any] = field(default_factory=dict)
    resumed: Optional[float] = None
    #: after ``resumed``, how long devices have to reconnect before an offline status counts (the engine
    #: passes its ``reconnect_grace``)
    grace: float = 0.0
    known: Mapping[str, SeriesData] = field(default_factory=dict)


class Condition(abc.ABC):
    """A condition answers: does it hold now? ``None`` means it cannot say (no data yet)."""

    #: seconds of samples of its series this condition needs
    window: float = 0.0
    #: the version of what :meth:`export` returns (0: it learns nothing worth keeping across restarts); a
    #: saved state of another version is ignored on start (the condition learns anew)
    state_version: int = 0
    #: seconds of stored history it wants after a restart beyond ``window`` (a condition that keeps its own
    #: summary of the series in ``SeriesData.memo`` instead of its samples reads ``SeriesData.seeded``)
    history: float = 0.0

    @abc.abstractmethod
    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        """True when the condition holds at ``ctx.at``; ``active`` is whether it held before (hysteresis)."""

    def value(self, ctx: Ctx) -> Optional[float]:
        """The value a message shows (the latest value unless the condition computes another)."""
        return ctx.series.value

    def next_change(self, ctx: Ctx) -> Optional[float]:
        """When the answer may change without a new sample (a window sliding, silence growing)."""
        return None

    def began(self, ctx: Ctx) -> Optional[float]:
        """When a condition confirmed only after a wait began to hold (an offline status settles): a
        ``for`` period counts from then. None: from now."""
        return None

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        """What the condition found, for the message template beside ``value`` (e.g. a learned interval)."""
        return {}

    def series_refs(self) -> tuple[str, ...]:
        """Other series (ids) this condition reads."""
        return ()

    #: for a condition whose learned state is its cells in ``SeriesData.memo``: their key and how many
    #: (the default :meth:`export` and :meth:`restore` keep them across restarts)
    memo_key: str = ""
    memo_cells: int = 0

    def export(self, ctx: Ctx) -> Optional[dict[str, Any]]:
        """What it learned (in ``ctx.scratch``, the alert's, or about ``ctx.series``) that must survive a
        restart, as JSON-able data: small, the engine saves it per alert with the alert records. None: nothing.
        By default: its cells in ``SeriesData.memo`` (:attr:`memo_key`), NaN as null."""
        s = ctx.series
        if not self.memo_key or s.layout is None or self.memo_key not in s.layout:
            return None
        cells, _ = s.state(self.memo_key, lambda: array("d"))
        return {"cells": [None if math.isnan(x) else x for x in cells]}

    def restore(self, ctx: Ctx, data: Any) -> None:
        """Put back what :meth:`export` returned before a restart (same :attr:`state_version`) into an empty
        ``ctx.scratch`` (or ``ctx.series``); raise ValueError, TypeError or KeyError on data it cannot use,
        before it changes anything. By default: its cells in ``SeriesData.memo``."""
        if not self.memo_key:
            raise ValueError(f"{type(self).__name__} keeps no learned state")
        saved = [math.nan if x is None else finite(x) for x in data["cells"]]
        if len(saved) != self.memo_cells:
            raise ValueError(f"{len(saved)} cells saved, {self.memo_cells} expected")
        cells, created = ctx.series.state(self.memo_key, lambda: array("d", saved))
        if not created:
            cells[:] = array("d", saved)
