"""Dropping readings the bridge has just seen: redeliveries and retained messages replayed on reconnect.

The store write is idempotent (same series and timestamp overwrite), so this memory is an
optimisation and a count, bounded and lost on restart without harm. A reading is a duplicate of
one remembered for its series when:

- its source time is the same (whatever its ``seq``);
- it has no source time (the receive time stands in) and the same ``seq``;
- it is a retained message with no source time and the same value as the series' last one.

Same ``seq`` with a *different* source time is kept: that is a device whose counter restarted,
and dropping it would lose a real reading.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

from vigil.core.event import Event

__all__ = ["Deduplicator"]

_Key = tuple[str, str, str]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class _Window:
    """The last ``size`` 64-bit keys in a ring: compact, and ``in`` scans it in C."""

    __slots__ = ("items", "next")

    def __init__(self) -> None:
        self.items = array("q")
        self.next = 0

    def add(self, item: int, size: int) -> None:
        if not _INT64_MIN <= item <= _INT64_MAX:
            return  # a time or seq no reading can have: nothing to remember it by
        if len(self.items) < size:
            self.items.append(item)
        else:
            self.items[self.next] = item
            self.next = (self.next + 1) % size


    def discard(self, item: int) -> None:
        """Forget ``item`` (its slot keeps a value no reading has)."""
        for i, value in enumerate(self.items):
            if value == item:
                self.items[i] = _INT64_MIN


class _Recent:
    __slots__ = ("last_value", "seqs", "stamps")

    def __init__(self) -> None:
        self.stamps: _Window | None = None
        self.seqs: _Window | None = None
        self.last_value: float | None = None


class Deduplicator:
    """Remembers the last ``per_series`` timestamps and seqs of the ``max_series`` most recent series."""

    def __init__(self, max_series: int = 10_000, per_series: int = 16) -> None:
        self._max_series = max_series
        self._per_series = per_series
        self._series: OrderedDict[_Key, _Recent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._series)

    def seen(self, event: Event, from_source: bool = True, retained: bool = False) -> bool:
        """True when ``event`` duplicates one remembered; otherwise remember it and return False."""
        if self._max_series == 0:
            return False
        key = (event.device, event.sensor, event.metric)
        recent = self._series.get(key)
        if recent is None:
            recent = _Recent()
            self._series[key] = recent
            if len(self._series) > self._max_series:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
            if from_source:
                if recent.stamps is not None and event.ts_us in recent.stamps.items:
                    return True
            else:
                redelivered = event.seq is not None and recent.seqs is not None and event.seq in recent.seqs.items
                replayed = retained and event.value == recent.last_value
                if redelivered or replayed:
                    return True
        # Each rule needs only its own key: source times for the first, seqs for the second.
        if from_source:
            if recent.stamps is None:
                recent.stamps = _Window()
            recent.stamps.add(event.ts_us, self._per_series)
        elif event.seq is not None:
            if recent.seqs is None:
                recent.seqs = _Window()
            recent.seqs.add(event.seq, self._per_series)
        recent.last_value = event.value
        return False

    def forget(self, event: Event) -> None:
        """Forget ``event``: it was never acknowledged, and its redelivery must not count as a duplicate."""
        recent = self._series.get((event.device, event.sensor, event.metric))
        if recent is None:
            return
        if recent.stamps is not None:
            recent.stamps.discard(event.ts_us)
        if recent.seqs is not None and event.seq is not None:
            recent.seqs.discard(event.seq)
        recent.last_value = None
