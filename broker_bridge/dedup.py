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

from collections import OrderedDict

from vigil.event import Event

__all__ = ["Deduplicator"]

_Key = tuple[str, str, str]


class _Recent:
    __slots__ = ("last_value", "seqs", "stamps")

    def __init__(self) -> None:
        self.stamps: dict[int, None] = {}  # insertion-ordered: the oldest goes first
        self.seqs: dict[int, None] = {}
        self.last_value: float | None = None


class Deduplicator:
    """Remembers the last ``per_series`` timestamps and seqs of the ``max_series`` most recent series."""

    def __init__(self, max_series: int = 10_000, per_series: int = 32) -> None:
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
                if event.ts_us in recent.stamps:
                    return True
            else:
                redelivered = event.seq is not None and event.seq in recent.seqs
                replayed = retained and event.value == recent.last_value
                if redelivered or replayed:
                    return True
        _remember(recent.stamps, event.ts_us, self._per_series)
        if event.seq is not None:
            _remember(recent.seqs, event.seq, self._per_series)
        recent.last_value = event.value
        return False


def _remember(window: dict[int, None], item: int, size: int) -> None:
    window[item] = None
    if len(window) > size:
        del window[next(iter(window))]
