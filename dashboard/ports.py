"""What the dashboard needs from the rule engine and the bridge, in its own words.

The dashboard imports neither: the application layer (``vigil.app.dashboard_wiring``) hands
``create_app`` objects with these methods, built on ``alerting`` and ``broker_bridge``.

    Rules            the Rules page, the tiles' limits, the preview and who is on call (RuleChecker, RuleReader,
                     RuleReplayer, OnCallReader)
    PayloadFormats   the bridge's formats, for readings posted with ``format=``
    Reports          the rule engine's temperature-log report (PDF, CSV), for the Reports page
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Optional, Protocol

from vigil.core.errors import VigilError
from vigil.core.event import Event
from vigil.core.stores import Store

__all__ = ["Issue", "Limit", "OnCall", "PayloadFormats", "PayloadParser", "Replay", "ReportFile", "ReportRefused",
           "Reports", "Rules", "RulesInvalid", "RulesVerdict", "Step"]

Limit = dict[str, Any]


@dataclass(frozen=True)
class Issue:
    """One problem (or warning) in a rules file, as ``vigil rules check`` words it; ``line`` None: the whole file."""

    text: str
    line: Optional[int] = None


@dataclass(frozen=True)
class RulesVerdict:
    """What the rule engine's loader says of one rules text: it loads when there are no ``issues``."""

    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


class RulesInvalid(VigilError):
    """The rules text does not load; ``issues`` says why (every problem)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(i.text for i in issues))


@dataclass(frozen=True)
class Step:
    """One state change of a replayed rule on one series."""

    series: str
    at: float
    state: str
    previous: str
    value: Optional[float]
    severity: str
    message: str


@dataclass(frozen=True)
class Replay:
    """A rule replayed over stored history: its state changes, those delivery would have been handed,
    how many series it watches (none read when more than asked) and how many points were read."""

    steps: list[Step] = field(default_factory=list)
    notified: list[Step] = field(default_factory=list)
    series: int = 0
    points: int = 0


class RuleChecker(Protocol):
    """The rule engine's verdict on a rules text (the Rules page, the editor's form)."""

    def check(self, text: str, file: str) -> RulesVerdict: ...

    def hostile(self, text: str) -> Optional[tuple[Optional[int], str]]:
        """(line, reason) when the text is refused before parsing (too large, YAML aliases)."""
        ...


class RuleReader(Protocol):
    """What the rules files on disk hold for the overview and the alerts page; empty when they do not load."""

    def limits(self, path: Path) -> list[tuple[dict[str, Any], Limit]]:
        """(match, limit) of every enabled single-series rule with a threshold or a no-data limit."""
        ...

    def quiet(self, path: Path) -> dict[str, list[dict[str, Any]]]:
        """The mute windows and fixed silences, as JSON: ``{"mute_windows": [...], "silences": [...]}``."""
        ...


class RuleReplayer(Protocol):
    """``vigil rules backtest`` for one rule of an unsaved text: nothing is sent, nothing is written."""

    def replay(self, text: str, file: str, rule: str, store: Store, start: float, end: float,
               max_series: int) -> Replay:
        """RulesInvalid when the text does not load; PreviewError when ``rule`` is not there or disabled."""
        ...


@dataclass(frozen=True)
class OnCall:
    """Who a schedule names now (``person``, until ``until``) and next (``next_person`` from ``next_from``)."""

    schedule: str
    person: Optional[str]
    until: Optional[float] = None
    next_person: Optional[str] = None
    next_from: Optional[float] = None


class OnCallReader(Protocol):
    """The on-call schedules of the rules files on disk, resolved at ``now`` in ``zone`` (the site's, by default)."""

    def on_call(self, path: Path, now: float, zone: tzinfo) -> list[OnCall]:
        """One entry per schedule; empty when the files define none or do not load."""
        ...


class Rules(RuleChecker, RuleReader, RuleReplayer, OnCallReader, Protocol):
    """Everything the dashboard asks of the rule engine."""


class Refused(Protocol):
    @property
    def reason(self) -> str: ...

    @property
    def detail(self) -> str: ...


class Parsed(Protocol):
    @property
    def events(self) -> Sequence[Event]: ...

    @property
    def dead(self) -> Sequence[Refused]: ...


class PayloadParser(Protocol):
    """One format's parsing and checks, as the bridge does them on a message of ``topic``."""

    def process(self, topic: str, payload: bytes, received: float) -> Parsed: ...


class PayloadFormats(Protocol):
    def parser(self, fmt: str) -> PayloadParser:
        """The parser of format ``fmt``; BadRequest when there is no such format or it is not configured."""
        ...


@dataclass(frozen=True)
class ReportFile:
    """A finished report: the file's suggested name, its media type and its bytes."""

    name: str
    media_type: str
    data: bytes


class ReportRefused(VigilError):
    """The report cannot be made as asked (no such series, nothing stored, a period too long): a sentence."""


class Reports(Protocol):
    """The temperature-log report of ``units`` (series ids) from ``start`` to ``end``, one row every ``interval``
    seconds, as ``fmt`` ("pdf" or "csv"), times in ``zone``; it is sealed in the rule engine's ledger."""

    def make(self, store: Store, units: list[str], start: float, end: float, interval: float, zone: tzinfo,
             fmt: str, title: str = "") -> ReportFile:
        """ReportRefused when it cannot be made as asked."""
        ...
