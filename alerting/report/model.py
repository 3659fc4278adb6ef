"""What a temperature-log report holds: the request, each unit's part, its excursions, and the manifest.

Plain data: :mod:`alerting.report.build` fills it from the store and the ledger, the writers
(:mod:`~alerting.report.csvout`, :mod:`~alerting.report.pdfout`) only print it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from vigil.core.errors import VigilError
from vigil.core.jsonlimits import loads
from vigil.core.topics import invisible_character

__all__ = [
    "DayStats",
    "EmptyPeriod",
    "Excursion",
    "Manifest",
    "Mark",
    "Report",
    "ReportError",
    "ReportRequest",
    "StateUnavailable",
    "UnitReport",
    "Verdict",
]

MAX_MARKS = 20_000  # readings at marks per unit: a year at every 30 min
MAX_UNITS = 200
MAX_PERIOD = 400 * 86400.0


class ReportError(VigilError, ValueError):
    """A report cannot be made as asked (a sentence that says what to change)."""


class StateUnavailable(VigilError):
    """The alert state (the ledger) cannot be opened, read or written: an SQLite file, or a PostgreSQL database
    named by its URL with the password redacted (``target``)."""

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        super().__init__(message)


class EmptyPeriod(ReportError):
    """None of the units has a reading in the period: nothing to report, nothing sealed."""


@dataclass(frozen=True)
class ReportRequest:
    """Which series (``device/sensor/metric``) over ``[start, end)`` (epoch seconds), read every ``interval``."""

    units: list[str]
    start: float
    end: float
    interval: float = 4 * 3600.0
    zone: dt.tzinfo = dt.timezone.utc
    title: str = ""
    # Optional limits per unit (low, high) drawn on the chart; None where unknown.
    limits: Mapping[str, tuple[Optional[float], Optional[float]]] = field(default_factory=dict)

    def check(self) -> None:
        """ReportError with a sentence when the request cannot be met."""
        from vigil.core.calibration import CalibrationError, parse_series

        if not self.units:
            raise ReportError("no series asked for: name at least one (device/sensor/metric)")
        if len(self.title) > 200:
            raise ReportError("the title is over 200 characters")
        why = invisible_character(self.title) if self.title else None
        if why:
            raise ReportError(f"the title cannot be printed as given: {why}")
        if len(self.units) > MAX_UNITS:
            raise ReportError(f"{len(self.units)} series asked for; at most {MAX_UNITS} in one report")
        if len(set(self.units)) != len(self.units):
            raise ReportError("a series is named twice")
        for unit in self.units:
            try:
                parse_series(unit)
            except CalibrationError as exc:
                raise ReportError(str(exc)) from None
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise ReportError("the end of the period must be after its start")
        if self.end - self.start > MAX_PERIOD:
            raise ReportError(f"the period is over {MAX_PERIOD / 86400:.0f} days; make one report per month")
        if not (math.isfinite(self.interval) and self.interval >= 60):
            raise ReportError("the interval between readings must be at least 1 minute")
        if (self.end - self.start) / self.interval > MAX_MARKS:
            raise ReportError(f"over {MAX_MARKS:,} readings per series at that interval; choose a longer one")


@dataclass(frozen=True, slots=True)
class Mark:
    """The reading at or just before ``at`` (within one interval): ``value`` None means no reading."""

    at: float
    ts: Optional[float]
    value: Optional[float]
    raw: Optional[float]  # the value before calibration, when the reading was corrected


@dataclass(frozen=True, slots=True)
class DayStats:
    """One site day (``start``/``end`` its local midnights): the readings' count, min, max, mean."""

    day: str  # YYYY-MM-DD in the site zone
    start: float
    end: float
    count: int
    low: Optional[float]
    high: Optional[float]
    mean: Optional[float]
    corrected: int  # readings with a raw value (calibrated)


@dataclass
class Excursion:
    """One excursion of a rule on a unit, from the ledger: began ``since``, ended ``ended`` (None: still on)."""

    rule: str
    series: str
    since: float
    fired_at: float
    ended: Optional[float] = None
    peak: Optional[float] = None
    value: Optional[float] = None
    severity: str = ""
    message: str = ""
    unit: str = ""
    latched: bool = False
    resolved_at: Optional[float] = None
    told: list[dict[str, Any]] = field(default_factory=list)  # {receiver, kind, at}
    acks: list[dict[str, Any]] = field(default_factory=list)  # {by, via, comment, at}
    notes: list[dict[str, Any]] = field(default_factory=list)  # {by, text, at}
    seqs: list[int] = field(default_factory=list)  # the ledger rows it was built from

    def duration(self, now: float) -> float:
        return max(0.0, (self.ended if self.ended is not None else now) - self.since)


@dataclass
class UnitReport:
    """One series over the period."""

    series: str
    unit: str
    count: int
    low: Optional[float]
    high: Optional[float]
    mean: Optional[float]
    corrected: int
    marks: list[Mark]
    days: list[DayStats]
    excursions: list[Excursion]
    calibration: list[str]  # sentences: the corrections in force during the period
    # The chart: an envelope (low and high per bucket) of the readings; NaN where a bucket is empty.
    chart_ts: np.ndarray[Any, np.dtype[np.float64]]
    chart_low: np.ndarray[Any, np.dtype[np.float64]]
    chart_high: np.ndarray[Any, np.dtype[np.float64]]
    limits: tuple[Optional[float], Optional[float]] = (None, None)
    spacing: float = 0.0  # the median time between readings (s): the chart breaks its line at longer gaps


@dataclass(frozen=True)
class Manifest:
    """What a report file carries to be verified: the ledger rows it stands on."""

    report_id: str
    start: float
    end: float
    zone: str
    units: list[str]
    head_seq: int
    head_hash: str
    seals: list[int]
    made_at: float
    data_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps({"v": 1, "id": self.report_id, "start": self.start, "end": self.end, "zone": self.zone,
                           "units": self.units, "head_seq": self.head_seq, "head_hash": self.head_hash,
                           "seals": self.seals, "made_at": self.made_at, "data_sha256": self.data_sha256},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Manifest:
        """The manifest back from its JSON; ReportError when it is not one."""
        try:
            d = loads(text, max_bytes=4 * 1024 * 1024)
            if not isinstance(d, dict) or d.get("v") != 1:
                raise ValueError("not a version 1 manifest")
            units = d["units"]
            seals = d["seals"]
            if not (isinstance(units, list) and all(isinstance(u, str) for u in units)):
                raise ValueError("units")
            if not (isinstance(seals, list) and all(type(s) is int for s in seals)):
                raise ValueError("seals")
            if len(units) > MAX_UNITS or len(seals) > MAX_UNITS * MAX_PERIOD / 86400:
                raise ValueError("more series or seals than a report can have")
            if type(d["head_seq"]) is not int or not isinstance(d["head_hash"], str):
                raise ValueError("head")
            return Manifest(str(d["id"]), float(d["start"]), float(d["end"]), str(d["zone"]), units,
                            d["head_seq"], d["head_hash"], seals, float(d["made_at"]), str(d.get("data_sha256", "")))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise ReportError(f"the report's manifest cannot be read ({exc})") from None


@dataclass
class Report:
    """A made report: its units, the manifest of what it stands on, and warnings found while making it."""

    request: ReportRequest
    zone_name: str
    made_at: float
    units: list[UnitReport]
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)
    data_csv: str = ""  # the CSV's data lines (after the manifest), as hashed in the ledger's report row

    @property
    def title(self) -> str:
        return self.request.title or "Temperature log"


@dataclass(frozen=True)
class Verdict:
    """What ``verify_file`` found: ``ok`` when nothing the report relied on changed; ``checked`` says what it read."""

    ok: bool
    problems: list[str]
    checked: str
