"""The dashboard as the application assembles it: its own settings, and the rule engine and the bridge
behind the ports it declares (``dashboard.ports``).

    EngineRules          dashboard.ports.Rules on alerting's loader, backtest and on-call schedules
    BridgeFormats        dashboard.ports.PayloadFormats on the bridge's pipeline
    EngineReports        dashboard.ports.Reports on alerting.report
    create_dashboard     the FastAPI app for a VigilConfig
    serve_dashboard      serve it until cancelled (vigil dashboard, vigil up)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI

from alerting.templates import use_zone
from broker_bridge.pipeline import Pipeline
from broker_bridge.settings import BridgeSettings
from dashboard.app import create_app, serve
from dashboard.ports import (
    Issue,
    Limit,
    OnCall,
    PayloadFormats,
    Replay,
    ReportFile,
    ReportRefused,
    Reports,
    Rules,
    RulesInvalid,
    RulesVerdict,
    Step,
)
from dashboard.preview import PreviewError
from vigil.app.config import VigilConfig
from vigil.core.errors import BadRequest
from vigil.core.sitetime import site_zone
from vigil.core.stores import Store, open_store
from vigil.core.topics import Topics

__all__ = ["BridgeFormats", "EngineReports", "EngineRules", "create_dashboard", "serve_dashboard"]

log = logging.getLogger(__name__)


def _issues(issues: list[Any]) -> list[Issue]:
    return [Issue(str(i), i.line) for i in issues]


class EngineRules:
    """The rule engine's own loader and backtest, in the dashboard's words.

    The loader and the backtest are imported when first asked for, not when the dashboard starts.
    """

    def check(self, text: str, file: str) -> RulesVerdict:
        from alerting.rules import RulesError, load_rules_text

        try:
            ruleset, warnings = load_rules_text(text, file)
        except RulesError as exc:
            return RulesVerdict(issues=_issues(exc.issues))
        return RulesVerdict(warnings=_issues(warnings), rules=[r.name for r in ruleset.rules])

    def hostile(self, text: str) -> Optional[tuple[Optional[int], str]]:
        from alerting.rules import refuse_hostile_yaml

        return refuse_hostile_yaml(text)

    def limits(self, path: Path) -> list[tuple[dict[str, Any], Limit]]:
        from alerting.rules import load_rules_path

        try:
            ruleset, _ = load_rules_path(path)
        except Exception as exc:  # a broken file is shown on the Rules page; tiles just lose their limits
            log.info("no limits for the overview: the rules do not load: %s", str(exc).splitlines()[0][:200])
            return []
        out = []
        for rule in ruleset.rules:
            spec = rule.spec
            if not spec.enabled or spec.series or spec.difference is not None:
                continue  # cross-series rules hold no single series to one number
            limit = _limit_of(spec)
            if limit is not None:
                out.append((spec.match.model_dump(), limit))
        return out

    def quiet(self, path: Path) -> dict[str, list[dict[str, Any]]]:
        from alerting.rules import load_rules_path

        try:
            ruleset, _ = load_rules_path(path)
        except Exception:
            return {"mute_windows": [], "silences": []}
        notify = ruleset.notify
        return {"mute_windows": [m.model_dump(mode="json") for m in notify.mute_windows],
                "silences": [s.model_dump(mode="json") for s in notify.silences]}

    def on_call(self, path: Path, now: float, zone: dt.tzinfo) -> list[OnCall]:
        from alerting.notify.oncall import who_is_on_call
        from alerting.rules import load_rules_path

        try:
            ruleset, _ = load_rules_path(path)
        except Exception as exc:  # a broken file is shown on the Rules page; the panel just stays empty
            log.info("no on-call schedules: the rules do not load: %s", str(exc).splitlines()[0][:200])
            return []
        return [OnCall(o.schedule, o.person, o.until, o.next_person, o.next_from)
                for o in who_is_on_call(ruleset.notify, now, zone)]

    def replay(self, text: str, file: str, rule: str, store: Store, start: float, end: float,
               max_series: int) -> Replay:
        from alerting.backtest import backtest
        from alerting.rules import RulesError, RuleSet, load_rules_text

        try:
            ruleset, _ = load_rules_text(text, file)
        except RulesError as exc:
            raise RulesInvalid(_issues(exc.issues)) from None
        chosen = tuple(r for r in ruleset.rules if r.name == rule)
        if not chosen:
            raise PreviewError(f"no rule named {rule!r} in {file}; known: {', '.join(r.name for r in ruleset.rules)}")
        if not chosen[0].spec.enabled:
            raise PreviewError(f"rule {rule!r} is disabled (enabled: false): it would do nothing")
        result = backtest(RuleSet(chosen, ruleset.notify, ruleset.files), store, start, end, max_series=max_series)

        def step(t: Any) -> Step:
            return Step(t.series, t.at, t.state.value, t.previous.value, t.value, t.severity.value, t.message)

        return Replay([step(t) for t in result.transitions], [step(t) for t in result.notifications],
                      result.series, result.points)


def _limit_of(spec: Any) -> Optional[Limit]:
    """The numbers a person can check a value against, or None for rules without any."""
    common = {"rule": spec.name, "severity": spec.severity.value, "for": spec.for_}
    if spec.above is not None or spec.below is not None:
        return {**common, "kind": "threshold", "above": spec.above, "below": spec.below,
                "clear_below": spec.clear_below, "clear_above": spec.clear_above}
    if spec.aggregate is not None:
        a = spec.aggregate
        return {**common, "kind": "aggregate", "fn": a.fn, "window": a.window, "above": a.above, "below": a.below,
                "clear_below": a.clear_below, "clear_above": a.clear_above}
    if spec.nodata is not None:
        after = spec.nodata if isinstance(spec.nodata, (int, float)) else spec.nodata.after
        return {**common, "kind": "nodata", "after": float(after)}
    return None


class BridgeFormats:
    """The bridge's pipeline for one payload format, with the bridge's settings of this configuration."""

    def __init__(self, bridge: BridgeSettings, topics: Topics) -> None:
        self.bridge = bridge
        self.topics = topics

    def parser(self, fmt: str) -> Pipeline:
        try:
            return Pipeline.for_format(self.bridge, self.topics, fmt)
        except ValueError as exc:  # an unknown format, or one without a source: the caller named it
            raise BadRequest(str(exc)) from None


class EngineReports:
    """The rule engine's report (alerting.report) over the store, as ``vigil report`` makes it: limits from the
    rules files, calibrations from the journal in the data directory, sealed in the ledger of the engine's state
    (``state``: its SQLite file, or the ``postgresql://`` URL of the database engines share)."""

    def __init__(self, state: str, rules_path: Path, data_dir: Path) -> None:
        self.state = state
        self.rules_path = rules_path
        self.data_dir = data_dir

    def make(self, store: Store, units: list[str], start: float, end: float, interval: float, zone: dt.tzinfo,
             fmt: str, title: str = "") -> ReportFile:
        from alerting.report import ReportError, ReportRequest, StateUnavailable, make_report, write_csv, write_pdf
        from alerting.report.limits import limits_from_rules
        from vigil.core.calibration import JOURNAL_NAME, CalibrationJournal

        journal = self.data_dir / JOURNAL_NAME
        try:
            request = ReportRequest(units, start, end, interval, zone, title, limits_from_rules(self.rules_path, units))
            report = make_report(store, self.state, request, seal=True,
                                 journal=CalibrationJournal(journal) if journal.exists() else None)
        except ReportError as exc:  # what was asked cannot be reported (the report's own words)
            raise ReportRefused(str(exc)) from None
        except StateUnavailable as exc:  # the seal goes into the engine's state: it must be reachable
            raise ReportRefused(f"{exc}; the report cannot be sealed: make reports where the rule engine's "
                                "state can be reached") from None
        except OSError as exc:  # the state file's directory cannot be made
            raise ReportRefused(f"cannot use the alert state file {self.state} to seal the report: {exc}; "
                                "make reports where the rule engine runs") from None
        first = dt.datetime.fromtimestamp(start, zone).date()
        last = dt.datetime.fromtimestamp(end - 1, zone).date()
        name = f"vigil-report-{first}" + ("" if first == last else f"-to-{last}") + f".{fmt}"
        with tempfile.TemporaryDirectory(prefix="vigil-report-") as tmp:
            path = Path(tmp) / name
            (write_pdf if fmt == "pdf" else write_csv)(report, path)
            data = path.read_bytes()
        return ReportFile(name, "application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8", data)


def _parts(config: VigilConfig, options: dict[str, Any]) -> dict[str, Any]:
    """create_app's arguments from ``config``, the caller's ``options`` (publisher, live, clock) on top."""
    settings = config.dashboard
    use_zone(site_zone(settings.zone_name))  # the preview's messages, as the engine's, in the site's zone
    rules: Rules = EngineRules()
    formats: PayloadFormats = BridgeFormats(config.bridge, config.mqtt.topics)
    rules_path = Path(settings.rules or config.alerting.rules)
    reports: Reports = EngineReports(config.alerting.state, rules_path, Path(config.data_dir))
    return {"data_dir": Path(config.data_dir), "rules_path": rules_path,
            "rules": rules, "formats": formats, "reports": reports, **options}


def create_dashboard(config: VigilConfig, *, store: Store, **options: Any) -> FastAPI:
    """The dashboard app of ``config`` over ``store``."""
    return create_app(config.dashboard, config.mqtt, store=store, **_parts(config, options))


async def serve_dashboard(config: VigilConfig, *, store: Optional[Store] = None,
                          ready: Optional[asyncio.Event] = None, **options: Any) -> None:
    """Serve the dashboard of ``config`` until cancelled; without ``store``, on the configured one (closed after)."""
    own = store is None
    if store is None:
        store = open_store(config.store.store_url(), retention=config.store.retention)
    try:
        await serve(config.dashboard, config.mqtt, store=store, ready=ready, **_parts(config, options))
    finally:
        if own:
            await asyncio.to_thread(store.close)
