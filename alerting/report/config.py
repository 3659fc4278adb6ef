"""The ``reports:`` key of a rules file: temperature reports made and sent on a schedule.

Example (top level of a rules file, beside ``rules:`` and ``receivers:``)::

    reports:
      - name: kitchen-weekly
        series: ["freezer-*/t0/temperature", fridge-1/t0/temperature]   # globs on device/sensor/metric
        every: week            # day | week (Monday to Monday) | month
        at: "07:00"            # site time on the day after the period; the period just finished is reported
        interval: 4h           # one row of the table per series and interval
        formats: [pdf, csv]
        receivers: [manager-email]   # apprise receivers; the files go as attachments

The receivers are checked by :class:`alerting.notify.config.NotifyConfig` (they must exist); the
scheduler is :mod:`alerting.report.schedule`. This module imports only pydantic and the core, so the
rules loader can import it without the report's PDF machinery.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, Field, field_validator

from vigil.core.configtypes import STRICT, Duration
from vigil.core.sitetime import check_zone

__all__ = ["ReportSchedule", "Reports", "time_of_day"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GLOB_PART = re.compile(r"[^/\x00-\x1f\x7f]{1,200}")
MAX_GLOBS = 200
Format = Literal["pdf", "csv"]
FORMATS: tuple[Format, ...] = ("pdf", "csv")


def time_of_day(value: Any) -> dt.time:
    """``"07:00"`` (or YAML 1.1's sexagesimal 420 for an unquoted 07:00) as a time of day."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        value = f"{value // 60:02d}:{value % 60:02d}"
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            return dt.time(int(m[1]), int(m[2]))
    raise ValueError(f"expected a time of day such as \"07:00\", got {value!r}")


class ReportSchedule(BaseModel):
    """One scheduled report: which series, how often, when, in what formats, to whom."""

    model_config = STRICT

    name: str = Field(description="Names the files (<data_dir>/reports/<name>-<period>.pdf) and the run record.")
    series: list[str] = Field(min_length=1, max_length=MAX_GLOBS)
    every: Literal["day", "week", "month"]
    at: dt.time = dt.time(7, 0)
    interval: Duration = 4 * 3600.0
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS), min_length=1)
    receivers: list[str] = Field(min_length=1)
    time_zone: Optional[str] = None  # none: the site's (dashboard.timezone, else the server's)
    title: str = Field("", max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("expected a name of letters, digits, '-', '_' and '.' (at most 64, no '/'), "
                             "such as kitchen-weekly; it names the report's files")
        return v

    @field_validator("series")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            parts = glob.split("/")
            if len(parts) != 3 or not all(_GLOB_PART.fullmatch(p) for p in parts):
                raise ValueError(f"expected a series as device/sensor/metric (globs allowed, such as "
                                 f"\"freezer-*/t0/temperature\"), got {glob[:100]!r}")
        return v

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> dt.time:
        return time_of_day(v)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if not 60 <= v <= 86400:
            raise ValueError("expected an interval from 1m to 1d, such as 4h")
        return v

    @field_validator("formats", "receivers")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_zone(v)


def _unique_names(reports: list[ReportSchedule]) -> list[ReportSchedule]:
    seen: set[str] = set()
    for r in reports:
        if r.name in seen:
            raise ValueError(f"two reports are named {r.name!r}; each needs a name of its own (it names the files)")
        seen.add(r.name)
    return reports


#: the type of ``NotifyConfig.reports``: every report, names unique
Reports = Annotated[list[ReportSchedule], AfterValidator(_unique_names)]
