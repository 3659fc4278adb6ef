"""Temperature-log reports: readings at marks, each day's min/max/mean, every excursion with the people who
were told and acknowledged and what they did, a chart; CSV and PDF; sealed in the ledger and verifiable.

    report = make_report(store, state_path, ReportRequest(units, start, end, zone=zone))
    write_pdf(report, "log.pdf"); write_csv(report, "log.csv")
    verify_file("log.pdf", store, state_path)  -> Verdict(ok, problems, checked)

docs/reports.md is the user's guide; ``seal`` says the canonical form of a seal's digest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import make_report, mark_times, site_days
    from .csvout import write_csv
    from .model import (
        DayStats,
        EmptyPeriod,
        Excursion,
        Manifest,
        Mark,
        Report,
        ReportError,
        ReportRequest,
        StateUnavailable,
        UnitReport,
        Verdict,
    )
    from .pdfout import write_pdf
    from .period import parse_period, previous_period
    from .verify import verify_file

# imported on first use: the rules loader imports .config, and needs neither fpdf nor the rest
_WHERE = {
    **dict.fromkeys(("make_report", "mark_times", "site_days"), "build"),
    "write_csv": "csvout",
    "write_pdf": "pdfout",
    **dict.fromkeys(("parse_period", "previous_period"), "period"),
    "verify_file": "verify",
    **dict.fromkeys(("DayStats", "EmptyPeriod", "Excursion", "Manifest", "Mark", "Report", "ReportError",
                     "ReportRequest", "StateUnavailable", "UnitReport", "Verdict"), "model"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)

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
    "make_report",
    "mark_times",
    "parse_period",
    "previous_period",
    "site_days",
    "verify_file",
    "write_csv",
    "write_pdf",
]
