"""Calibration per series: the corrections, the bridge's table and journal, and what the stored event carries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker_bridge.calibration import Calibrations
from broker_bridge.formats import RawReading
from broker_bridge.normalize import Normalizer, SourceRules
from broker_bridge.pipeline import Pipeline
from broker_bridge.settings import BridgeSettings, SourceSettings
from tests.support.pipeline import NOW
from vigil.core.calibration import (
    CalibrationError,
    CalibrationJournal,
    Correction,
    parse_change,
    parse_correction,
)
from vigil.core.event import Event
from vigil.core.refusal import Refusal
from vigil.core.topics import Topics

TOPICS = Topics()
SERIES = "freezer-1/t0/temperature"
TOPIC = f"vigil/calibration/{SERIES}"


def msg(**body: Any) -> bytes:
    return json.dumps({"by": "alice", "at": NOW, **body}).encode()


def test_offset_adds_to_the_raw_value() -> None:
    c = parse_correction({"offset": -0.4})
    assert c.apply(-17.0) == pytest.approx(-17.4)
    assert c.describe() == "offset -0.4"


def test_two_points_map_both_references_and_the_line_between() -> None:
    c = parse_correction({"points": [[0.5, 0.0], [99.0, 100.0]]})
    assert c.apply(0.5) == pytest.approx(0.0)
    assert c.apply(99.0) == pytest.approx(100.0)
    assert c.apply(49.75) == pytest.approx(50.0)
    assert c.apply(-20.0) == pytest.approx((-20.0 - 0.5) * 100 / 98.5)
    assert c.gain * 10 + c.shift == pytest.approx(c.apply(10))


@pytest.mark.parametrize(("spec", "words"), [
    ({"points": [[1.0, 0.0], [1.0, 5.0]]}, "same raw value"),
    ({"points": [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]}, "exactly two"),
    ({"points": [[0.0, 0.0]]}, "use an offset"),
    ({"points": [[0.0, 10.0], [10.0, 0.0]]}, "swapped"),
    ({"points": [[0.0, math.nan], [10.0, 10.0]]}, "finite"),
    ({"points": [[0.0, 0.0], [math.inf, 10.0]]}, "finite"),
    ({"points": [[0.0, 0.0], [10.0]]}, "pair"),
    ({"points": "0,0;1,1"}, "exactly two"),
    ({"offset": math.nan}, "finite"),
    ({"offset": 1e300}, "finite"),
    ({"offset": "1.5"}, "finite"),
    ({"offset": True}, "finite"),
    ({}, "either offset"),
    ({"offset": 1.0, "points": [[0, 0], [1, 1]]}, "not both"),
])
def test_refused_corrections_say_why(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(CalibrationError, match=words):
        parse_correction(spec)


@pytest.mark.parametrize(("calibration", "words"), [
    ({"freezer-1/t0": {"offset": 1}}, "device/sensor/metric"),
    ({"freezer-1/t0/temp/x": {"offset": 1}}, "device/sensor/metric"),
    ({"freezer-1/t+/temperature": {"offset": 1}}, "wildcard"),
    ({SERIES: {"offset": 1, "gain": 2}}, "gain\n  Extra inputs"),
    ({SERIES: {"points": [[3, 1], [3, 2]]}}, "same raw value"),
    ({SERIES: {"offset": float("nan")}}, "finite"),
    ({SERIES: 0.5}, "valid dictionary or instance"),
])
def test_settings_refuse_bad_calibrations(calibration: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        BridgeSettings.model_validate({"calibration": calibration})


def _normalize(table: dict[tuple[str, str, str], Correction], value: float, unit: str = "°C",
               **settings: Any) -> Event:
    src = SourceSettings(name="src", format="plain", topic="x/{device}", error_values={"temperature": [85]})
    raw = RawReading("freezer-1", "t0", "temperature", value, None, unit, None, ())
    return Normalizer(BridgeSettings.model_validate(settings), table).normalize(raw, SourceRules.of(src), NOW)[0]


def test_the_event_keeps_the_raw_value_in_the_stored_unit() -> None:
    table = {("freezer-1", "t0", "temperature"): Correction(offset=-0.4)}
    event = _normalize(table, 212.0, "°F")  # converted to 100 °C first, then corrected
    assert event.raw == pytest.approx(100.0)
    assert event.value == pytest.approx(99.6)
    assert Event.from_json(event.to_json()).raw == pytest.approx(100.0)
    other = Normalizer(BridgeSettings()).normalize(
        RawReading("freezer-2", "t0", "temperature", 5.0, None, "°C", None, ()),
        SourceRules.of(SourceSettings(name="src", format="plain", topic="x/{device}")), NOW)[0]
    assert other.raw is None and "raw" not in other.to_dict()


def test_error_values_are_judged_raw_and_ranges_calibrated() -> None:
    table = {("freezer-1", "t0", "temperature"): Correction(offset=-1.0)}
    with pytest.raises(Refusal) as err:
        _normalize(table, 85.0)  # 84 once corrected: still the sensor's error value
    assert err.value.reason == "error_value"
    with pytest.raises(Refusal) as err:
        _normalize(table, 11.5, ranges={"temperature": {"min": 0, "max": 10}})
    assert err.value.reason == "range" and "10.5" in err.value.detail
    assert _normalize(table, 10.5, ranges={"temperature": {"min": 0, "max": 10}}).value == 9.5
    huge = {("freezer-1", "t0", "temperature"): parse_correction({"points": [[0, 0], [1e-12, 1e6]]})}
    with pytest.raises(Refusal) as err:
        _normalize(huge, 50.0)
    assert err.value.reason == "value" and "calibrated" in err.value.detail


def test_event_json_refuses_a_raw_that_is_not_a_finite_number() -> None:
    good = Event("d", "s", "temperature", 1.0, NOW, raw=2.0).to_dict()
    for bad in (1e300, "x", [1]):
        with pytest.raises(Exception, match=r"raw|could not convert|float"):
            Event.from_json(json.dumps({**good, "raw": bad}))


def cals(tmp_path: Path, configured: dict[str, Any] | None = None, now: float = NOW) -> Calibrations:
    corrections = BridgeSettings.model_validate({"calibration": configured or {}}).corrections()
    return Calibrations(corrections, tmp_path / "cal.jsonl", TOPICS, now)


def test_a_message_applies_to_the_next_reading_and_is_journaled(tmp_path: Path) -> None:
    c = cals(tmp_path)
    pipeline = Pipeline(BridgeSettings(), TOPICS, c.table)
    reading = b'{"value": -17.0, "unit": "C", "ts": 1700000000}'
    assert pipeline.process("vigil/readings/freezer-1/t0", reading, NOW).events[0].raw is None
    change = c.handle(TOPIC, msg(offset=-0.5, note="thermometer ref 123"), NOW)
    assert change is not None and change.previous is None
    later = reading.replace(b"1700000000", b"1700000001")
    event = pipeline.process("vigil/readings/freezer-1/t0", later, NOW + 1).events[0]
    assert (event.value, event.raw) == (pytest.approx(-17.5), -17.0)
    # the retained copy delivered again on the next subscription changes nothing
    assert c.handle(TOPIC, msg(offset=-0.5, note="thermometer ref 123"), NOW + 50) is None
    c.handle(TOPIC, msg(clear=True, at=NOW + 100), NOW + 100)
    assert c.table == {}
    history = CalibrationJournal(tmp_path / "cal.jsonl").history(SERIES)
    assert [(h.by, h.correction, h.previous) for h in history] == [
        ("alice", Correction(offset=-0.5), None), ("alice", None, Correction(offset=-0.5))]
    journal = CalibrationJournal(tmp_path / "cal.jsonl")
    assert journal.in_force(SERIES, NOW - 1) is None
    assert journal.in_force(SERIES, NOW + 10).correction == Correction(offset=-0.5)  # type: ignore[union-attr]
    assert journal.in_force(SERIES, NOW + 100) is None


def test_config_is_the_initial_value_and_the_latest_change_wins(tmp_path: Path) -> None:
    c = cals(tmp_path, {SERIES: {"offset": 0.3}})
    assert c.table[("freezer-1", "t0", "temperature")] == Correction(offset=0.3)
    c.handle(TOPIC, msg(offset=-0.2, at=NOW + 10), NOW + 10)
    # restart with vigil.yaml unchanged: the dashboard's change stays in force
    c = cals(tmp_path, {SERIES: {"offset": 0.3}}, now=NOW + 20)
    assert c.table[("freezer-1", "t0", "temperature")] == Correction(offset=-0.2)
    # the retained message older than an edit of vigil.yaml is not taken again
    c = cals(tmp_path, {SERIES: {"points": [[0, 0], [100, 101]]}}, now=NOW + 30)
    assert c.handle(TOPIC, msg(offset=-0.2, at=NOW + 10), NOW + 31) is None
    assert c.table[("freezer-1", "t0", "temperature")].points == ((0.0, 0.0), (100.0, 101.0))
    c = cals(tmp_path, {}, now=NOW + 40)  # removed from vigil.yaml: cleared
    assert c.table == {}
    origins = [(h.origin, h.correction is not None) for h in c.journal.history()]
    assert origins == [("config", True), ("mqtt", True), ("config", True), ("config", False)]


@pytest.mark.parametrize(("payload", "words"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "object"),
    (b'{"offset": 1}', "by .* and at"),
    (b'{"offset": 1e400, "by": "a", "at": 1}', "not JSON|finite"),
    (b'{"offset": NaN, "by": "a", "at": 1}', "not JSON"),
    (msg(offset=1, by=""), "blank"),
    (msg(offset=1, by="x" * 600), "visible text"),
    (msg(offset=1, note="a\u202eb"), "visible text"),
    (msg(offset=1, at=NOW + 86400), "future"),
    (msg(clear=True, offset=1), "clear takes no"),
    (msg(clear="yes"), "clear must be true"),
    (msg(offset=1, extra=1), "unknown field"),
    (b"[" * 10_000, "not JSON"),
    (b'{"offset": 1, "by": "a", "at": 1, "note": "' + b"x" * 5000 + b'"}', "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
])
def test_hostile_messages_are_refused_with_a_reason(tmp_path: Path, payload: bytes, words: str) -> None:
    c = cals(tmp_path)
    with pytest.raises(CalibrationError, match=words):
        c.handle(TOPIC, payload, NOW)
    assert c.table == {} and (tmp_path / "cal.jsonl").read_text() == ""


def test_a_bad_series_in_the_topic_is_refused(tmp_path: Path) -> None:
    c = cals(tmp_path)
    for topic in ("vigil/calibration/a/b", "vigil/calibration/a/b/c/d", "vigil/calibration/a/\u200bb/c"):
        with pytest.raises(CalibrationError):
            c.handle(topic, msg(offset=1), NOW)
    assert c.handle(TOPIC, b"", NOW) is None  # a deleted retained message changes nothing


def test_a_torn_journal_line_is_skipped(tmp_path: Path) -> None:
    c = cals(tmp_path)
    c.handle(TOPIC, msg(offset=1.0), NOW)
    with (tmp_path / "cal.jsonl").open("a") as f:
        f.write('{"series": "freezer-1/t0/temp')
    assert cals(tmp_path).table[("freezer-1", "t0", "temperature")] == Correction(offset=1.0)


def test_the_message_round_trips() -> None:
    change = parse_change(SERIES, msg(points=[[0, 1], [10, 12]], note="ice bath, boiling"))
    again = parse_change(SERIES, change.message())
    assert again == change
