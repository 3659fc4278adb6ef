"""Calibration of one series: what it is, its message on ``<root>/calibration/<device>/<sensor>/<metric>``
and its history (an append-only journal of every change).

A calibration is an offset (``{"offset": -0.4}``: stored = raw - 0.4) or two reference points
(``{"points": [[0.3, 0.0], [99.1, 100.0]]}``: the straight line through (raw 0.3 -> 0.0) and
(raw 99.1 -> 100.0)). Both are in the metric's stored unit (°C for temperature), applied by the
bridge after unit conversion and before the range check, dedup, storage and the rules; the value
before it is kept beside the calibrated one (``Event.raw``, the stored field ``raw``).

A change (set or clear) is a :class:`Change`: the series, the correction (None: cleared), who,
when, a note and where it came from (``config``: vigil.yaml at the bridge's start; ``mqtt``: the
dashboard, the command line or any client allowed to publish on the topic). The bridge appends
each change it takes to its journal (``<data_dir>/bridge-calibration.jsonl``), so which
correction applied at any time is :meth:`CalibrationJournal.in_force`. The latest change wins.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from vigil.core.errors import VigilError
from vigil.core.event import MAX_ABS_VALUE
from vigil.core.jsonlimits import loads
from vigil.core.topics import TopicError, invisible_character, validate_segment

__all__ = ["JOURNAL_NAME", "CalibrationError", "CalibrationJournal", "Change", "Correction", "parse_change",
           "parse_correction", "parse_series"]

log = logging.getLogger(__name__)

JOURNAL_NAME = "bridge-calibration.jsonl"
MAX_MESSAGE_BYTES = 4096
_TEXT_MAX = 500


class CalibrationError(VigilError, ValueError):
    """A calibration, its message or its series is not valid (the sentence says why)."""


def _number(value: object, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:  # type: ignore[arg-type]
        raise CalibrationError(f"{what} must be a finite number within ±{MAX_ABS_VALUE:g}, got {_shown(value)}")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Correction:
    """``stored = raw * gain + shift``, from an offset or from two points (raw, reference)."""

    offset: Optional[float] = None
    points: Optional[tuple[tuple[float, float], tuple[float, float]]] = None

    @property
    def gain(self) -> float:
        if self.points is None:
            return 1.0
        (r1, v1), (r2, v2) = self.points
        return (v2 - v1) / (r2 - r1)

    @property
    def shift(self) -> float:
        if self.points is None:
            return self.offset or 0.0
        (r1, v1), _ = self.points
        return v1 - r1 * self.gain

    def apply(self, raw: float) -> float:
        if self.points is None:
            return raw + (self.offset or 0.0)
        (r1, v1), _ = self.points
        return v1 + (raw - r1) * self.gain

    def to_dict(self) -> dict[str, Any]:
        if self.points is not None:
            return {"points": [list(p) for p in self.points]}
        return {"offset": self.offset}

    def describe(self) -> str:
        if self.points is not None:
            (r1, v1), (r2, v2) = self.points
            return f"two points: raw {r1:g} -> {v1:g}, raw {r2:g} -> {v2:g}"
        return f"offset {self.offset:+g}"


def parse_correction(data: Mapping[str, Any]) -> Correction:
    """``{"offset": x}`` or ``{"points": [[raw1, ref1], [raw2, ref2]]}``; CalibrationError says what is wrong."""
    has_offset, has_points = "offset" in data, "points" in data
    if has_offset == has_points:
        raise CalibrationError("give either offset (a number added to the raw value) or points "
                               "([[raw1, reference1], [raw2, reference2]]), not both and not neither")
    if has_offset:
        return Correction(offset=_number(data["offset"], "offset"))
    points = data["points"]
    if not isinstance(points, (list, tuple)) or len(points) != 2:
        count = f"{len(points)} points" if isinstance(points, (list, tuple)) else _shown(points)
        raise CalibrationError(f"points must be exactly two [raw, reference] pairs, got {count} (for one "
                               "reference reading, use an offset: reference - raw)")
    pairs = []
    for i, p in enumerate(points, 1):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise CalibrationError(f"point {i} must be a pair [raw, reference], got {_shown(p)}")
        pairs.append((_number(p[0], f"point {i} raw"), _number(p[1], f"point {i} reference")))
    (r1, v1), (r2, v2) = pairs
    if r1 == r2:
        raise CalibrationError(f"the two points have the same raw value {r1:g}: they define no line; take the "
                               "reference readings at two different temperatures")
    if (v2 - v1) / (r2 - r1) <= 0:
        raise CalibrationError("the two points make the calibrated value fall as the raw value rises (or stay "
                               "flat): are raw and reference swapped in one pair?")
    return Correction(points=(pairs[0], pairs[1]))


def parse_series(text: object) -> tuple[str, str, str]:
    """``device/sensor/metric`` -> its three names; CalibrationError if it is not one."""
    if not isinstance(text, str) or text.count("/") != 2:
        raise CalibrationError(f"a series is device/sensor/metric, got {_shown(text)}")
    device, sensor, metric = text.split("/")
    try:
        validate_segment(device, "device")
        validate_segment(sensor, "sensor")
        validate_segment(metric, "metric")
    except TopicError as exc:
        raise CalibrationError(str(exc)) from None
    return device, sensor, metric


@dataclass(frozen=True, slots=True)
class Change:
    """One set (``correction``) or clear (``correction`` None) of a series' calibration."""

    series: str
    correction: Optional[Correction]
    at: float
    by: str
    note: str = ""
    origin: str = "mqtt"
    previous: Optional[Correction] = None

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "at": self.at, "by": self.by, "note": self.note, "origin": self.origin,
                "calibration": self.correction.to_dict() if self.correction else None,
                "previous": self.previous.to_dict() if self.previous else None}

    def message(self) -> bytes:
        """The payload on the calibration topic (retained): the change without its series and origin."""
        body: dict[str, Any] = {"by": self.by, "at": self.at, "note": self.note}
        body.update(self.correction.to_dict() if self.correction else {"clear": True})
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > _TEXT_MAX or invisible_character(value.replace("\n", " ")):
        raise CalibrationError(f"{what} must be visible text of at most {_TEXT_MAX} characters")
    return value


def parse_change(series: str, payload: bytes, origin: str = "mqtt") -> Change:
    """The change a calibration message carries: ``{"offset"|"points"|"clear": ..., "by", "at", "note"}``."""
    parse_series(series)
    try:
        data = loads(payload, MAX_MESSAGE_BYTES)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CalibrationError("expected a JSON object")
    unknown = sorted(set(data) - {"offset", "points", "clear", "by", "at", "note"})
    if unknown:
        raise CalibrationError(f"unknown field {', '.join(map(repr, unknown))[:200]}")
    if "at" not in data or "by" not in data:
        raise CalibrationError("by (who) and at (when, epoch seconds) are required")
    at = _number(data["at"], "at")
    by = _text(data["by"], "by")
    if not by.strip():
        raise CalibrationError("by (who) must not be blank")
    note = _text(data.get("note", ""), "note")
    if data.get("clear") is True:
        if "offset" in data or "points" in data:
            raise CalibrationError("clear takes no offset or points")
        return Change(series, None, at, by, note, origin)
    if "clear" in data:
        raise CalibrationError("clear must be true (or left out)")
    return Change(series, parse_correction(data), at, by, note, origin)


def _correction_of(data: object) -> Optional[Correction]:
    return parse_correction(data) if isinstance(data, dict) else None


class CalibrationJournal:
    """The append-only history of changes (JSON lines), read whole: calibrations change a few times a year."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[Change]:
        """Every change, oldest first; a line that is not a change (a torn last write) is skipped and logged."""
        try:
            text = self.path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return []
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                parse_series(d["series"])
                out.append(Change(d["series"], _correction_of(d["calibration"]), float(d["at"]), str(d["by"]),
                                  str(d.get("note", "")), str(d.get("origin", "mqtt")), _correction_of(d["previous"])))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d is not a calibration change (%s); skipped", self.path, n, exc)
        return out

    def append(self, change: Change) -> None:
        """Add one change, on disk (fsync) before it returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(change.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def history(self, series: Optional[str] = None) -> list[Change]:
        return [c for c in self.read() if series is None or c.series == series]

    @staticmethod
    def current(changes: Iterable[Change]) -> dict[str, Change]:
        """The latest change of each series (by time, then by order in the journal)."""
        out: dict[str, Change] = {}
        for c in changes:
            last = out.get(c.series)
            if last is None or c.at >= last.at:
                out[c.series] = c
        return out

    def in_force(self, series: str, at: float) -> Optional[Change]:
        """The change in force for ``series`` at time ``at`` (None: never calibrated by then, or cleared)."""
        found = None
        for c in self.history(series):
            if c.at <= at and (found is None or c.at >= found.at):
                found = c
        return found if found is not None and found.correction is not None else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
