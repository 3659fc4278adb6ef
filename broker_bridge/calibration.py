"""The calibrations the bridge applies, and their history.

They start from ``bridge.calibration`` in vigil.yaml and change by messages on
``<root>/calibration/<device>/<sensor>/<metric>`` (retained: the dashboard's Calibration form,
``vigil calibration set``, or any client the ACL lets publish there). Every change the bridge takes
is appended to its journal (``<data_dir>/bridge-calibration.jsonl``, vigil/core/calibration.py)
before it applies to the next reading. The latest change wins: a message older than the change in
force (the retained copy the broker delivers again on every subscription) changes nothing; an edit
of vigil.yaml (a series added, changed or removed, compared with what the journal last took from
vigil.yaml) is a change at the bridge's start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from vigil.core.calibration import (
    CalibrationError,
    CalibrationJournal,
    Change,
    Correction,
    parse_change,
    parse_series,
)
from vigil.core.topics import Topics

__all__ = ["CONFIG_AUTHOR", "Calibrations"]

log = logging.getLogger(__name__)

CONFIG_AUTHOR = "vigil.yaml"


class Calibrations:
    """The corrections in force, by ``(device, sensor, metric)`` (``table``, read by the normalizer)."""

    def __init__(self, configured: dict[str, Correction], journal_path: str | Path, topics: Topics, now: float,
                 max_future: float = 300.0) -> None:
        self.journal = CalibrationJournal(journal_path)
        self.prefix = f"{topics.root}/calibration/"
        self.filter = topics.all_calibration
        self.table: dict[tuple[str, str, str], Correction] = {}
        self._max_future = max_future
        self.journal.path.parent.mkdir(parents=True, exist_ok=True)
        self.journal.path.touch()  # there even before the first change: the dashboard tells "none yet" from "not here"
        changes = self.journal.read()
        self._latest = CalibrationJournal.current(changes)
        from_config = {c.series: c.correction for c in changes if c.origin == "config"}
        for series, correction in configured.items():
            if series not in from_config or from_config[series] != correction:
                self._record(Change(series, correction, now, CONFIG_AUTHOR, "set in vigil.yaml", "config"))
        for series, was in from_config.items():
            if series not in configured and was is not None:
                self._record(Change(series, None, now, CONFIG_AUTHOR, "removed from vigil.yaml", "config"))
        for series, change in self._latest.items():
            if change.correction is not None:
                self.table[parse_series(series)] = change.correction
        if self.table:
            log.info("calibrations in force for %d series (history: %s)", len(self.table), self.journal.path)

    def takes(self, topic: str) -> bool:
        return topic.startswith(self.prefix)

    def handle(self, topic: str, payload: bytes, now: float) -> Optional[Change]:
        """Take one calibration message: the change applied, or None (nothing new); CalibrationError refuses it."""
        series = topic[len(self.prefix):]
        if not payload:  # the retained message was deleted: the calibration in force stays
            return None
        change = parse_change(series, payload)
        if change.at > now + self._max_future:
            raise CalibrationError(f"at {change.at:.0f} is {change.at - now:.0f} s in the future (check the clock "
                                   "of the machine that sent it)")
        last = self._latest.get(series)
        if last is not None and change.at <= last.at:
            return None  # the one in force (delivered again), or older than it: the latest change wins
        return self._record(change)

    def _record(self, change: Change) -> Change:
        last = self._latest.get(change.series)
        previous = last.correction if last is not None else None
        change = Change(change.series, change.correction, change.at, change.by, change.note, change.origin, previous)
        try:
            self.journal.append(change)
        except OSError as exc:
            raise CalibrationError(f"cannot record the change in {self.journal.path} ({exc}); "
                                   "it is not applied") from None
        self._latest[change.series] = change
        key = parse_series(change.series)
        if change.correction is None:
            self.table.pop(key, None)
        else:
            self.table[key] = change.correction
        log.info("calibration of %s: %s (by %s%s)", change.series,
                 change.correction.describe() if change.correction else "cleared", change.by,
                 f": {change.note}" if change.note else "")
        return change
