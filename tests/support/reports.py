"""Temperature-log reports in tests: a day of readings in a store, and a ledger written by hand as the engine
and the dispatcher write theirs (alerting/ledger.py, docs of issue 17)."""

from __future__ import annotations

import csv
import io
import zoneinfo
from pathlib import Path
from typing import Any, Optional

from alerting import ledger
from alerting.report import parse_period
from alerting.state import StateDB, immediate_transaction
from vigil.core import sqldb
from vigil.core.event import Event
from vigil.core.stores import Store, open_store

ZONE = zoneinfo.ZoneInfo("Europe/Berlin")
SERIES = "freezer-1/t0/temperature"
DAY = "2026-11-03"
KEY = f"freezer-warm/{SERIES}"


def day_bounds(day: str = DAY) -> tuple[float, float]:
    return parse_period("day", day, ZONE)


def value_at(i: int) -> float:
    """The i-th minute's reading: a slow saw around -18 °C, to two decimals."""
    return round(-18.0 + (i % 40) / 20, 2)


def fill(store: Store, series: str = SERIES, start: Optional[float] = None, minutes: int = 1440,
         raw_from: Optional[int] = None, skip: tuple[int, int] = (0, 0)) -> list[Event]:
    """One reading a minute from ``start`` (default: DAY's local midnight); from minute ``raw_from`` on,
    calibrated (raw = value + 0.4); minutes in ``[skip)`` left out. The events written."""
    device, sensor, metric = series.split("/")
    t0 = day_bounds()[0] if start is None else start
    events = [Event(device=device, sensor=sensor, metric=metric, value=value_at(i), ts=t0 + 60 * i, unit="°C",
                    raw=round(value_at(i) + 0.4, 2) if raw_from is not None and i >= raw_from else None)
              for i in range(minutes) if not skip[0] <= i < skip[1]]
    store.write(events)
    return events


def write_ledger(target: Path | str, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Append (kind, key, body) rows to the ledger of a state file or a ``postgresql://`` state, as the engine does
    (its tables made, its lock, one transaction); each row's time is its body's ``at``."""
    if sqldb.is_postgres(str(target)):
        StateDB(str(target)).close()  # the engine's tables, as an engine that ran
    conn = sqldb.connect(str(target))
    try:
        ledger.create(conn)  # type: ignore[arg-type]
        with immediate_transaction(conn):
            for kind, key, body in rows:
                ledger.append(conn, kind, key, body, float(body.get("at", 0.0)))  # type: ignore[arg-type]
    finally:
        conn.close()


def site(tmp_path: Path, state: Path | str | None = None) -> Path:
    """vigil.yaml (Europe/Berlin), two days of two freezers in its SQLite store, an excursion in the ledger of
    ``state`` (default: the site's state file)."""
    data = tmp_path / "data"
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {data}\ndashboard:\n  timezone: Europe/Berlin\n")
    with open_store(f"sqlite:///{data}/vigil.db", retention=10 * 365 * 86400.0) as store:
        fill(store, minutes=2 * 1440, raw_from=2000)
        fill(store, series="freezer-2/t0/temperature", minutes=2 * 1440)
    write_ledger(state if state is not None else data / "alerts.db", excursion_rows(day_bounds()[0] + 3600))
    return config


def excursion_rows(since: float, *, key: str = KEY, ended: float = 0.0, peak: float = -8.0, by: str = "alice",
                   note: str = "door closed, stock checked") -> list[tuple[str, str, dict[str, Any]]]:
    """A latched excursion: fired, told, cleared, acknowledged by link, a note, resolved."""
    ended = ended or since + 2400
    rule, series = key.split("/", 1)
    return [
        ("fired", key, {"rule": rule, "series": series, "since": since, "at": since + 300, "value": -11.0,
                        "peak": -11.0, "severity": "critical", "message": "Freezer warm", "unit": "°C",
                        "latched": True}),
        ("told", key, {"receiver": "kitchen-phone", "kind": "firing", "at": since + 301}),
        ("cleared", key, {"since": since, "at": ended, "peak": peak}),
        ("acked", key, {"by": by, "comment": "on it", "via": "link", "episode": since, "at": ended + 100}),
        ("note", key, {"id": f"n-{since}", "by": by, "text": note, "at": ended + 200}),
        ("resolved", key, {"since": since, "at": ended + 100, "ended": ended, "peak": peak,
                           "acknowledged_by": by}),
    ]


def csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The ``#`` lines and the data rows of a report CSV."""
    text = path.read_text("utf-8")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    return comments, list(csv.DictReader(io.StringIO(body)))
