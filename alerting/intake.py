"""The engine's intake: the series it knows, what a reading changes in them, readings held out, and the
conditions' learned state that is kept across restarts.

Every series the engine heard (or a rule declares) is one :class:`SeriesData`: its latest value, when it
was last heard, and the window of samples the rules watching it need. A series watched by a ``hold_out``
rule (``jump`` or ``noise``) has a second, *raw* copy that takes every reading: the holding rules judge on
it, before the others. A reading one of them flags is kept out of the series every other rule reads
(thresholds, aggregates, rate, anomaly, forecast, stuck, nodata: the last plausible value stands); it
still counts as an arrival, so ``stale`` sees the sensor alive (it does not learn an interval from it).
The raw copy takes a reading at its evaluation time (``min(ts, engine clock)``), so a device clock far
ahead cannot blind the holding rules.
Each held-out reading is counted by rule (:attr:`Intake.held_out`, the metric
``vigil_alerting_held_out``) and told to :attr:`Intake.listener` (``vigil rules test`` prints them).

Learned state (a condition's :meth:`~alerting.conditions.Condition.export`) is saved per alert in the state
file as a small versioned JSON blob with the alert records; :meth:`Intake.restore` gives it back on start,
and ignores a blob it cannot read (another version, another kind of condition, damaged).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

from alerting.conditions import Ctx, SeriesData
from alerting.conditions.status import STATUS_METRIC
from alerting.index import CompiledRule, RuleIndex
from vigil.core.event import Event

__all__ = ["LEARNED_EVERY", "MAX_LEARNED", "SLICES", "HeldOut", "Intake"]

log = logging.getLogger(__name__)

#: the most characters one alert's learned state may take in the state file (more is not saved)
MAX_LEARNED = 8192
#: each alert's learned state is saved this often (engine clock, seconds), and at a clean stop: a crash
#: loses at most this much learning. The alerts are saved in :data:`SLICES` slices (by the hash of their
#: key), one slice every LEARNED_EVERY / SLICES seconds, so no save stalls the engine for long.
LEARNED_EVERY = 30.0
SLICES = 30


@dataclass(frozen=True)
class HeldOut:
    """A reading a ``hold_out`` rule kept out of the other rules on its series, and why."""

    rule: str
    series: str
    ts: float
    value: float
    reason: str


class Intake:
    """The series of one engine; ``scratch`` is the engine's per-alert state (shared, by key)."""

    def __init__(self, index: RuleIndex, scratch: dict[str, dict[str, Any]]) -> None:
        self.index = index
        self.scratch = scratch
        self.series: dict[str, SeriesData] = {}
        #: every reading of the series a hold_out rule watches (those rules judge on it)
        self.raw: dict[str, SeriesData] = {}
        self.dirty: set[str] = set()
        #: saved learned state that could not be read on start: deleted at the next save
        self.unreadable: set[str] = set()
        self._slice, self._sliced_at = 0, -math.inf
        self._learns = any(c.condition.state_version for c in index.rules.values())
        self.held_out: Counter[str] = Counter()
        self.listener: Optional[Callable[[HeldOut], None]] = None
        self._too_large: set[str] = set()
        #: the keys of the alerts whose condition learns, by slice; rebuilt once a round (and when alerts
        #: come or go), so a slice's save does not walk every alert
        self._slices: list[list[str]] = []
        self._sliced_count = -1

    def rules_of(self, sid: str, data: SeriesData) -> tuple[CompiledRule, ...]:
        return self.index.for_series(sid, data.device, data.sensor, data.metric, data.labels)

    def series_for(self, sid: str, device: str, sensor: str, metric: str, labels: dict[str, str]) -> SeriesData:
        data = self.series.get(sid)
        lab = tuple(sorted(labels.items()))
        if data is None:
            data = SeriesData(sid, device, sensor, metric, lab)
            self.series[sid] = data
            self.keep_for(sid, data)
        elif data.labels != lab and metric != STATUS_METRIC:
            data.labels = lab
            self.index.forget(sid)
            self.keep_for(sid, data)
        return data

    def keep_for(self, sid: str, data: SeriesData) -> None:
        """How much of the series to keep (the longest window of its rules); a raw copy if a rule holds out."""
        rules = self.rules_of(sid, data)
        holders = [c for c in rules if c.rule.spec.hold_out]
        others = [*(c for c in rules if not c.rule.spec.hold_out), *self.index.by_ref.get(sid, ())]
        data.keep = max((c.condition.window for c in others), default=0.0)
        if not holders:
            self.raw.pop(sid, None)
            return
        raw = self.raw.get(sid)
        if raw is None:
            raw = self.raw[sid] = SeriesData(sid, data.device, data.sensor, data.metric, data.labels, data.unit,
                                             data.value, data.ts, data.last_seen)
        raw.labels = data.labels
        raw.keep = max(c.condition.window for c in holders)

    def rekeep(self) -> None:
        """The rules changed: every series' window (and raw copy) again."""
        self._learns = any(c.condition.state_version for c in self.index.rules.values())
        self._sliced_count = -1
        for sid, data in self.series.items():
            self.keep_for(sid, data)

    def data_for(self, c: CompiledRule, sid: str) -> Optional[SeriesData]:
        """What rule ``c`` reads: the raw series for a holding rule, else the plausible one."""
        if c.rule.spec.hold_out and sid in self.raw:
            return self.raw[sid]
        return self.series.get(sid)

    def take(self, event: Event, sid: str, at: float, now: float) -> tuple[SeriesData, Optional[SeriesData]]:
        """The event's series (``sid``, its id), and its raw copy with the reading added (None: no rule holds
        readings out)."""
        data = self.series.get(sid)
        if data is None or data.labels != event.labels:  # (an event's labels are sorted, as a series' are)
            data = self.series_for(sid, event.device, event.sensor, event.metric, dict(event.labels))
        data.unit = event.unit
        raw = self.raw.get(data.id)
        if raw is not None:
            raw.unit = event.unit
            # at its evaluation time (never after the engine's clock): one reading from a device clock far
            # ahead would otherwise leave the holding rules judging every later reading as late
            raw.add(at, event.value, at, now)
        return data, raw

    def admit(self, data: SeriesData, event: Event, at: float, now: float, held: list[CompiledRule],
              lookup: Callable[[str], Optional[SeriesData]]) -> None:
        """Add the reading to the series the other rules read, unless a holding rule flagged it: then it
        counts only as an arrival, and the held-out reading is counted and told."""
        if not held:
            data.add(event.ts, event.value, at, now)
            self.dirty.add(data.id)
            return
        data.received = now
        raw = self.raw[data.id]
        for c in held:
            st = self.scratch.setdefault(f"{c.name}/{data.id}", {})
            self.held_out[c.name] += 1
            if self.listener is not None:
                reason = c.condition.facts(Ctx(at, raw, lookup, st)).get("reason", "")
                self.listener(HeldOut(c.name, data.id, event.ts, event.value, str(reason)))

    def facts(self, c: CompiledRule, ctx: Ctx) -> dict[str, Any]:
        """The condition's facts for a message; a holding rule's say whether it held the reading out."""
        facts = c.condition.facts(ctx)
        if c.rule.spec.hold_out:
            held = ctx.scratch.get("held_ts") == ctx.series.ts
            facts["held_out"] = held
            if held and facts.get("reason"):
                facts["reason"] = f"{facts['reason']}; kept out of the other rules"
        return facts

    # -- learned state across restarts ----------------------------------------------------------

    def learned_due(self, now: float) -> bool:
        """A slice of the learned state is due to be saved (:data:`LEARNED_EVERY`)."""
        return (self._learns or bool(self.unreadable)) and now >= self._sliced_at + LEARNED_EVERY / SLICES

    def export(self, now: float, everything: bool = False) -> list[tuple[str, str, str, Optional[str]]]:
        """(key, rule, series, blob) of the alerts of a condition that learns in the slices due (blob None:
        nothing to keep, the saved one is deleted), or of all when ``everything`` is asked for. No bookkeeping
        per evaluation: every such alert is saved in its turn (by then nearly all changed, as readings come)."""
        out: list[tuple[str, str, str, Optional[str]]] = []
        if not (everything or self.learned_due(now)):
            return out
        step = LEARNED_EVERY / SLICES
        if self._sliced_at == -math.inf:
            self._sliced_at = now - step  # the first save after a start is one slice too
        elapsed = now - self._sliced_at
        n = SLICES if everything or elapsed >= LEARNED_EVERY else int(elapsed / step)
        picked = {(self._slice + i) % SLICES for i in range(n)}
        # the time left over counts toward the next slice, so each alert is saved every LEARNED_EVERY
        self._slice, self._sliced_at = (self._slice + n) % SLICES, now if n == SLICES else now - elapsed % step
        # deleted first; those read after all are saved again below
        out += [(key, *key.partition("/")[::2], None) for key in self.unreadable]
        self.unreadable.clear()
        if n == SLICES or self._slice < n or len(self.scratch) != self._sliced_count:
            self._slices = [[] for _ in range(SLICES)]
            for key in self.scratch:
                c = self.index.get(key.partition("/")[0])
                if c is not None and c.condition.state_version:
                    self._slices[hash(key) % SLICES].append(key)
            self._sliced_count = len(self.scratch)
        for key in (k for i in sorted(picked) for k in self._slices[i]):
            st = self.scratch.get(key)
            rule, _, sid = key.partition("/")
            c = self.index.get(rule)
            if st is None or c is None or not c.condition.state_version:
                continue
            series = self.data_for(c, sid)
            if series is None:
                continue  # not known (yet): what was saved stays
            blob = None
            if (data := c.condition.export(Ctx(0.0, series, self.series.get, st))) is not None:
                doc = {"v": c.condition.state_version, "kind": type(c.condition).__name__, "data": data}
                try:
                    blob = json.dumps(doc, separators=(",", ":"), allow_nan=False)
                except ValueError:  # an overflowed number: learned anew after a restart
                    blob = None
            if blob is not None and len(blob) > MAX_LEARNED:
                if key not in self._too_large:
                    self._too_large.add(key)
                    log.warning("%s: learned state of %d characters not kept across restarts", key, len(blob))
                blob = None
            out.append((key, rule, sid, blob))
        return out

    def restore(self, key: str, blob: str) -> bool:
        """Give an alert its saved learned state back; False (and nothing changed) when it cannot be read."""
        self.unreadable.add(key)  # deleted at the next save, unless read here (then rewritten)
        rule, _, sid = key.partition("/")
        c = self.index.get(rule)
        if c is None or c.condition.state_version == 0 or len(blob) > MAX_LEARNED:
            return False
        if self.data_for(c, sid) is None:
            device, sensor, metric = ([*sid.split("/"), "", "", ""])[:3]
            self.series_for(sid, device, sensor, metric, {})
        series = self.data_for(c, sid)
        assert series is not None
        try:
            doc = json.loads(blob)
            if doc["v"] != c.condition.state_version or doc["kind"] != type(c.condition).__name__:
                return False
            st: dict[str, Any] = {}
            c.condition.restore(Ctx(0.0, series, self.series.get, st), doc["data"])
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.warning("%s: ignoring learned state that cannot be read: %s", key, exc)
            return False
        self.scratch.setdefault(key, {}).update(st)
        self.unreadable.discard(key)
        return True
