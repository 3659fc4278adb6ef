"""Stuck: readings keep arriving, but the value does not move for longer than the series' history says it should."""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any, Optional

from ._base import Condition, Ctx, SeriesData
from .status import STATUS_METRIC, STATUS_SENSOR

__all__ = ["Stuck", "sibling_keys"]

_FIRST, _START, _RUN, _LONGEST, _HELD, _TS = range(6)


def sibling_keys(groups: list[str], data: SeriesData) -> list[tuple[str, str]]:
    """The sibling groups ``data`` belongs to, as (group, value): ``device`` and ``label:<name>`` in ``groups``
    (a device's status series has none); series that share a key are siblings (stuck, drift)."""
    if data.sensor == STATUS_SENSOR and data.metric == STATUS_METRIC:
        return []
    labels: Mapping[str, str] = dict(data.labels)
    keys = []
    for g in groups:
        if g == "device":
            keys.append((g, data.device))
        elif g[len("label:"):] in labels:
            keys.append((g, labels[g[len("label:"):]]))
    return keys


class Stuck(Condition):
    """Active when the value stayed within ``band`` of where its run began for more than ``after`` seconds, or
    ``factor`` x the longest such run seen in the first ``warmup`` seconds (at least ``minimum``).

    Judged on readings only (source time, latest reading minus the run's first): a series that stops
    reporting is stale, not stuck. Before it fires it asks the siblings (other series of the same device,
    or with the same value of a label: ``groups`` holds ``device`` and ``label:<name>``): when every
    sibling that reported within the limit stayed just as still over it (a stable greenhouse at night, a
    solar sensor in the dark), the stillness is the world's, not the sensor's, and it does not fire. Once
    firing it holds until the value moves. The run is kept per series (in ``SeriesData.memo``); after a restart it
    counts again from the first reading (a firing alert stays firing until the value moves).
    """

    def __init__(self, after: Optional[float], factor: Optional[float], minimum: float, warmup: float,
                 band: float, groups: list[str]) -> None:
        self.after, self.factor, self.minimum, self.warmup = after, factor, minimum, warmup
        self.band, self.groups = band, groups
        self.memo_key = f"stuck:{band!r}:{warmup!r}"
        # sibling index over the engine's series: (group, value) -> ids; rebuilt when series come or go
        self._index: dict[tuple[str, str], list[str]] = {}
        self._indexed: tuple[int, int] = (0, 0)

    def _track(self, ctx: Ctx, active: bool) -> Optional[memoryview[float]]:
        """Follow the run of equal values with each new reading (and, during warm-up, its longest run).

        Kept per series and band/warm-up in ``SeriesData.memo`` as 6 doubles: the
        first reading's time, the run's start and value, the longest run of the warm-up, whether it was
        firing before a restart and has not moved since, and the latest reading's time."""
        s = ctx.series
        if s.ts is None or s.value is None:
            return None
        ts, value = s.ts, s.value
        st, created = s.state(self.memo_key, lambda: array("d", [ts, ts, value, 0.0, float(active), math.nan]))
        if not created and s.ts <= st[_TS]:
            return st  # judged already, or a late reading: the run is the readings' in time order
        st[_TS] = s.ts
        if s.ts - st[_FIRST] <= self.warmup:
            st[_LONGEST] = max(st[_LONGEST], s.ts - st[_START])
        if abs(s.value - st[_RUN]) > self.band + 1e-9:  # -17.9 - -18.0 is 0.10000000000000142
            st[_START], st[_RUN], st[_HELD] = s.ts, s.value, 0.0
        return st

    def limit(self, ctx: Ctx) -> Optional[float]:
        """How long a run may last (None: still learning the series' longest run)."""
        if self.after is not None:
            return self.after
        st = self._track(ctx, False)
        if self.factor is None or st is None or st[_TS] - st[_FIRST] < self.warmup:
            return None
        return max(self.minimum, self.factor * st[_LONGEST])

    def check(self, ctx: Ctx, active: bool) -> Optional[bool]:
        st = self._track(ctx, active)
        if st is None:
            return None
        if st[_HELD]:
            return True  # firing before a restart, and not moved since
        limit = self.limit(ctx)
        if limit is None or st[_TS] - st[_START] <= limit:
            return False
        return active or not self._vouched(ctx, st[_TS] - limit)

    def _vouched(self, ctx: Ctx, since: float) -> bool:
        """Every sibling that reported since ``since`` stayed as still since then (and there is one)."""
        reporting = [sib for sib in self._siblings(ctx) if sib.ts is not None and sib.ts > since]
        return bool(reporting) and all(sib.changed is None or sib.changed <= since for sib in reporting)

    def _siblings(self, ctx: Ctx) -> list[SeriesData]:
        known, s = ctx.known, ctx.series
        if self._indexed != (id(known), len(known)):
            self._index = {}
            for sid, data in known.items():
                for key in sibling_keys(self.groups, data):
                    self._index.setdefault(key, []).append(sid)
            self._indexed = (id(known), len(known))
        ids = {sid for key in sibling_keys(self.groups, s) for sid in self._index.get(key, ())} - {s.id}
        return [d for sid in sorted(ids) if (d := known.get(sid)) is not None]

    def facts(self, ctx: Ctx) -> dict[str, Any]:
        st = self._track(ctx, False)
        return {"stuck_since": None if st is None else st[_START], "limit": self.limit(ctx)}

    state_version = 2
    memo_cells = 6
