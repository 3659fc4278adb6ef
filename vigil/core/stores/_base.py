"""The store interface: the one boundary between Vigil and its system of record.

Implementations: InfluxDB 1.x (``influx1``), InfluxDB 2.x/3.x (``influx2``), SQLite (``sqlite``,
the embedded default) and an in-memory one for unit tests (``memory``). They are synchronous
and thread-safe; async callers run them with ``asyncio.to_thread``, except ``write_async``: the
bridge's write, which InfluxDB 1.x does on the event loop itself (a kept-alive connection on
asyncio streams, ``_asynchttp``), the others in a worker thread.

Exceptions::

    StoreError                 anything that went wrong talking to a store
    ├── StoreUnavailable       the store cannot be reached now; retry later (the bridge spools)
    └── StoreRejected          the store refused the request; retrying the same will not help
        └── EventsRefused      some events of a batch cannot be stored (each with its reason);
                               the others were stored

Every store checks each event of a batch itself (:func:`storable`) before writing, whatever the
caller checked: an event it cannot hold (a value that is not a finite number within ±1e18, a time
outside 1677-2262) is refused alone and the rest of the batch is stored.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Optional

from vigil.core.errors import VigilError
from vigil.core.event import MAX_ABS_VALUE, Event, SeriesKey

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "EventsRefused",
    "Point",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "StoredField",
    "check_query",
    "storable",
    "unstorable",
]

Aggregate = Literal["mean", "min", "max", "sum", "count"]
AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "sum", "count")
# ``value`` (calibrated, what the rules and the dashboard see) or ``raw`` (before calibration).
StoredField = Literal["value", "raw"]


class StoreError(VigilError):
    """A store operation failed; ``store`` names the store (URL without secrets)."""

    def __init__(self, store: str, message: str) -> None:
        self.store = store
        super().__init__(f"{store}: {message}")


class StoreUnavailable(StoreError):
    """The store cannot be reached now (connection refused, timeout, 5xx): try again later."""


class StoreRejected(StoreError):
    """The store refused the request (bad data, bad query, no such database): do not retry as is."""


class EventsRefused(StoreRejected):
    """Some events of a batch cannot be stored (``refused``: each with its reason); the others were."""

    def __init__(self, store: str, refused: list[tuple[Event, str]]) -> None:
        self.refused = refused
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        super().__init__(store, f"refused {refused[0][0].series.id}: {refused[0][1]}{more}")


# InfluxDB keeps nanoseconds since 1970 in a signed 64-bit integer: 1677-09-21 to 2262-04-11.
_TS_LIMIT = 9_223_372_036.0


def unstorable(event: Event) -> Optional[str]:
    """Why no store can hold ``event`` (a sentence), or None."""
    value = event.value
    if type(value) is not float and type(value) is not int:
        return f"value {value!r} is not a number"
    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
        return f"value {value!r} is not a finite number within ±{MAX_ABS_VALUE:g}"
    raw = event.raw
    if raw is not None and not (type(raw) in (float, int) and -MAX_ABS_VALUE <= raw <= MAX_ABS_VALUE):
        return f"raw value {raw!r} is not a finite number within ±{MAX_ABS_VALUE:g}"
    if not -_TS_LIMIT < event.ts < _TS_LIMIT:
        return f"time {event.ts!r} is not a finite time between 1677 and 2262"
    return None


@contextmanager
def storable(store: str, events: Sequence[Event]) -> Iterator[Sequence[Event]]:
    """The events of ``events`` a store can hold; EventsRefused on leaving names the others.

    ``with storable(self.name, events) as good: <write good>``: when the write raises, that
    exception goes on (the refused events are then refused again when the batch is retried).
    """
    refused = None
    for event in events:
        why = unstorable(event)
        if why is not None:
            if refused is None:
                refused = []
            refused.append((event, why))
    if refused is None:
        yield events
        return
    bad = {id(e) for e, _ in refused}
    yield [e for e in events if id(e) not in bad]
    raise EventsRefused(store, refused)


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a series at ``ts`` (epoch seconds); for buckets, ``ts`` is the bucket's start."""

    ts: float
    value: float


class Store(abc.ABC):
    """Write batches of events; read a series back by time range, raw or in time buckets."""

    name: str = "store"

    @abc.abstractmethod
    def write(self, events: Sequence[Event]) -> None:
        """Store ``events``. Idempotent: the same series and timestamp overwrite.

        Events it cannot hold are refused alone (EventsRefused, after the others are stored).
        """

    async def write_async(self, events: Sequence[Event]) -> None:
        """:meth:`write` from the event loop, with the same errors; by default in a worker thread."""
        await asyncio.to_thread(self.write, events)

    @abc.abstractmethod
    def query(
        self,
        series: SeriesKey,
        start: float,
        end: float,
        bucket: Optional[float] = None,
        aggregate: Aggregate = "mean",
        field: StoredField = "value",
    ) -> list[Point]:
        """Points of ``series`` with ``start <= ts < end``, oldest first.

        With ``bucket`` (seconds), one point per non-empty bucket aligned to the epoch,
        holding the ``aggregate`` of the values in it. ``field="raw"``: the values before
        calibration, of the readings that were calibrated only (the others have no ``raw``).
        """

    @abc.abstractmethod
    def latest(self, metric: Optional[str] = None, device: Optional[str] = None) -> list[Event]:
        """The newest event of every series, optionally only of one metric and/or device."""

    def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise StoreUnavailable when the store cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_query(start: float, end: float, bucket: Optional[float], aggregate: str, field: str = "value") -> None:
    """The argument checks every implementation shares (ValueError with a sentence)."""
    if field not in ("value", "raw"):
        raise ValueError(f"field must be value or raw, got {field!r}")
    if not (end > start):
        raise ValueError(f"the end of the range ({end}) must be after its start ({start})")
    if bucket is not None and not bucket > 0:
        raise ValueError(f"bucket must be a positive number of seconds, got {bucket}")
    if bucket is not None and (end - start) / bucket > 1_000_000:
        raise ValueError("more than 1,000,000 buckets asked for; use a larger bucket")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
