"""Periods in the site zone: a day, an ISO week (Monday to Monday), a month, or a range; local midnights
across DST (a day is 23 or 25 hours when the clocks change)."""

from __future__ import annotations

import datetime as dt
import re

from .model import ReportError

__all__ = ["parse_period", "parse_time", "previous_period"]

_KINDS = ("day", "week", "month")


def _midnight(day: dt.date, zone: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).timestamp()


def _bounds(kind: str, first: dt.date, zone: dt.tzinfo) -> tuple[float, float]:
    if kind == "day":
        nxt = first + dt.timedelta(days=1)
    elif kind == "week":
        nxt = first + dt.timedelta(days=7)
    else:
        nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return _midnight(first, zone), _midnight(nxt, zone)


def parse_period(kind: str, text: str, zone: dt.tzinfo) -> tuple[float, float]:
    """``day`` 2026-11-03, ``week`` 2026-W45 (or any date in it), ``month`` 2026-11: [start, end) epoch seconds."""
    text = text.strip()
    try:
        if kind == "day":
            return _bounds(kind, dt.date.fromisoformat(text), zone)
        if kind == "week":
            m = re.fullmatch(r"(\d{4})-?W(\d{2})", text, re.IGNORECASE)
            day = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1) if m else dt.date.fromisoformat(text)
            return _bounds(kind, day - dt.timedelta(days=day.weekday()), zone)
        if kind == "month":
            m = re.fullmatch(r"(\d{4})-(\d{2})", text)
            if not m:
                raise ValueError("not YYYY-MM")
            return _bounds(kind, dt.date(int(m[1]), int(m[2]), 1), zone)
    except (ValueError, TypeError, OverflowError):
        pass
    else:
        raise ReportError(f"unknown kind of period {kind!r}: day, week or month")
    example = {"day": "2026-11-03", "week": "2026-W45 (or a date in the week)", "month": "2026-11"}[kind]
    raise ReportError(f"--{kind} {text!r} is not a {kind}: write e.g. {example}")


def parse_time(text: str, zone: dt.tzinfo, *, end: bool = False) -> float:
    """A date (its local midnight; with ``end``, the midnight after it: the day is included) or an ISO 8601
    time (local unless it has a UTC offset)."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text)
            return _midnight(day + dt.timedelta(days=1) if end else day, zone)
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ReportError(f"{text!r} is not a date or time: write e.g. 2026-11-03 or 2026-11-03T08:00") from None


def previous_period(kind: str, now: float, zone: dt.tzinfo) -> tuple[float, float]:
    """The day, week or month that ended last before ``now`` (site zone): what a schedule reports."""
    if kind not in _KINDS:
        raise ReportError(f"unknown kind of period {kind!r}: day, week or month")
    today = dt.datetime.fromtimestamp(now, zone).date()
    if kind == "day":
        return _bounds(kind, today - dt.timedelta(days=1), zone)
    if kind == "week":
        monday = today - dt.timedelta(days=today.weekday())
        return _bounds(kind, monday - dt.timedelta(days=7), zone)
    first = today.replace(day=1)
    return _bounds(kind, (first - dt.timedelta(days=1)).replace(day=1), zone)
