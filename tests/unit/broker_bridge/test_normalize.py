"""Normalization as a user sees it in the stored event: units, metric names, labels, times, ranges."""

from __future__ import annotations

from typing import Any

import pytest

from broker_bridge.formats import RawReading
from broker_bridge.normalize import Normalizer, SourceRules
from broker_bridge.settings import BridgeSettings, SourceSettings
from broker_bridge.units import UnitError, converter
from tests.support.pipeline import NOW, make_pipeline
from vigil.core.event import Event
from vigil.core.refusal import Refusal


def normalize(raw: RawReading, source: SourceSettings | None = None, **settings: Any) -> tuple[Event, bool]:
    src = source or SourceSettings(name="src", format="plain", topic="x/{device}")
    return Normalizer(BridgeSettings.model_validate(settings)).normalize(raw, SourceRules.of(src), NOW)


def raw(value: object = 21.5, unit: str | None = "°C", metric: str = "temperature", ts: float | None = None,
        **kw: object) -> RawReading:
    return RawReading(kw.pop("device", "d"), kw.pop("sensor", "s"), metric, value, ts, unit,  # type: ignore[arg-type]
                      kw.pop("seq", None), kw.pop("labels", ()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "unit", "metric", "stored", "stored_unit"),
    [
        (212.0, "°F", "temperature", 100.0, "°C"),
        (-40.0, "F", "temperature", -40.0, "°C"),
        (273.15, "K", "temperature", 0.0, "°C"),
        (21.5, "C", "temperature", 21.5, "°C"),
        (21.5, "℃", "temperature", 21.5, "°C"),
        (101325.0, "Pa", "pressure", 1013.25, "hPa"),
        (1.01325, "bar", "pressure", 1013.25, "hPa"),
        (14.6959488, "psi", "pressure", 1013.25, "hPa"),
        (29.92126, "inHg", "pressure", 1013.25, "hPa"),
        (3000, "mV", "voltage", 3.0, "V"),
        (250, "mA", "current", 0.25, "A"),
        (1.5, "kW", "power", 1500.0, "W"),
        (1500, "Wh", "energy", 1.5, "kWh"),
        (3_600_000, "J", "energy", 1.0, "kWh"),
        (55, "%RH", "humidity", 55.0, "%"),
        (120, "lux", "illuminance", 120.0, "lx"),
        (21.5, None, "temperature", 21.5, "°C"),  # no unit: the stored one is assumed
        (7, "pH", "acidity", 7.0, "pH"),  # a metric Vigil has no unit for keeps its own
        (7, None, "acidity", 7.0, ""),
    ],
)
def test_units_are_converted_to_the_stored_unit(
    value: float, unit: str | None, metric: str, stored: float, stored_unit: str
) -> None:
    event, _ = normalize(raw(value, unit, metric))
    assert event.value == pytest.approx(stored, abs=1e-3)
    assert event.unit == stored_unit


def test_stored_unit_is_configurable() -> None:
    event, _ = normalize(raw(100.0, "°C"), units={"temperature": "°F"})
    assert event.value == pytest.approx(212.0)
    assert event.unit == "°F"
    with pytest.raises(ValueError, match="not a unit of temperature"):
        BridgeSettings.model_validate({"units": {"temperature": "hPa"}})


def test_units_that_do_not_convert_are_refused() -> None:
    with pytest.raises(Refusal) as exc:
        normalize(raw(5, "hPa"))
    assert exc.value.reason == "unit"
    with pytest.raises(UnitError):
        converter("°C", "V")


@pytest.mark.parametrize(("given", "stored"), [("Temperature", "temperature"), ("temp", "temperature"),
                                               ("RH", "humidity"), ("illuminance_lux", "illuminance")])
def test_metric_names_are_lower_case_and_aliases_resolved(given: str, stored: str) -> None:
    event, _ = normalize(raw(50, None, given))
    assert event.metric == stored


def test_metric_aliases_are_configurable() -> None:
    event, _ = normalize(raw(5, None, "t_air"), metric_aliases={"T_AIR": "temperature"})
    assert event.metric == "temperature"


def test_error_values_are_refused_only_for_their_metric_and_in_any_unit() -> None:
    src = SourceSettings(name="ds", format="plain", topic="x/{device}", error_values={"temperature": [85, -127]})
    for value, unit in ((85.0, "°C"), (185.0, "°F"), (-127.0, "°C"), (-196.6, "°F")):
        with pytest.raises(Refusal) as exc:
            normalize(raw(value, unit), src)
        assert exc.value.reason == "error_value" and "source 'ds'" in exc.value.detail
    assert normalize(raw(85.0, "%", "humidity"), src)[0].value == 85.0
    assert normalize(raw(85.1, "°C"), src)[0].value == 85.1


def test_ranges_are_configurable_and_merge_with_the_defaults() -> None:
    settings: dict[str, Any] = {"ranges": {"temperature": {"min": -40, "max": 60}}}
    with pytest.raises(Refusal, match=r"outside -40\.\.60"):
        normalize(raw(61.0), **settings)
    with pytest.raises(Refusal, match=r"outside 0\.\.100"):
        normalize(raw(101, "%", "humidity"), **settings)
    assert normalize(raw(500, "W", "power"), **settings)[0].value == 500.0
    with pytest.raises(ValueError, match="must not be above max"):
        BridgeSettings.model_validate({"ranges": {"co2": {"min": 10, "max": 1}}})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "21.5", None, True, [1], 10**400])
def test_values_that_are_not_finite_numbers_are_refused(value: object) -> None:
    with pytest.raises(Refusal) as exc:
        normalize(raw(value))
    assert exc.value.reason == "value"


def test_time_source_when_plausible_else_refused_or_receive_time() -> None:
    event, from_source = normalize(raw(ts=NOW - 10))
    assert (event.ts, from_source, event.received) == (NOW - 10, True, NOW)
    event, from_source = normalize(raw(ts=None))
    assert (event.ts, from_source) == (NOW, False)
    with pytest.raises(Refusal, match="ahead") as exc:
        normalize(raw(ts=NOW + 301))
    assert exc.value.reason == "ts_future"
    assert normalize(raw(ts=NOW + 299))[0].ts == NOW + 299
    with pytest.raises(Refusal) as exc:
        normalize(raw(ts=NOW - 31 * 86400))
    assert exc.value.reason == "ts_past"
    assert normalize(raw(ts=NOW - 2 * 86400), max_age="1d", max_future="1s", implausible_ts="receive_time")[0].ts == NOW
    assert normalize(raw(ts=NOW + 2), max_future="1s", implausible_ts="receive_time")[0].ts == NOW


def test_labels_topic_then_source_then_device_and_hostile_ones_refused() -> None:
    src = SourceSettings(name="s", format="plain", topic="x/{device}", labels={"site": "by-source", "floor": "1"})
    settings: dict[str, Any] = {"device_labels": {"d": {"site": "by-device"}}}
    event, _ = normalize(raw(labels=(("site", "payload"), ("rack", "r1"))), src, **settings)
    assert event.labels == (("floor", "1"), ("rack", "r1"), ("site", "by-device"))
    for labels in ((("device", "x"),), (("bad-key", "x"),), (("room", "a\nb"),), (("room", "x" * 129),),
                   (("room", ""),)):
        with pytest.raises(Refusal) as exc:
            normalize(raw(labels=labels))
        assert exc.value.reason == "name"


@pytest.mark.parametrize(
    "bad",
    [{"device_labels": {"d": {"time": "x"}}}, {"sources": [{"name": "s", "format": "plain", "topic": "a/{device}",
                                                             "labels": {"bad key": "x"}}]}],
)
def test_labels_in_the_configuration_are_checked_at_load(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="label"):
        BridgeSettings.model_validate(bad)


def test_hostile_device_names_are_stored_intact_or_refused() -> None:
    p = make_pipeline()
    payload = b'{"value":1.5,"ts":1699999999,"unit":"C"}'
    intact = ["freezer 1", "a,b", "k=v", 'say "hi"', "o'clock", "Kühlhaus", "温度计", "emoji🌡", "back\\slash",
              "x" * 128]
    for name in intact:
        out = p.process(f"vigil/readings/{name}/s", payload, NOW)
        assert [e.device for e in out.events] == [name], out.dead
    refused = ["a\nb", "a\rb", "tab\there", "x" * 129, "é" * 65, "\x00", "$SYS", " ", "nul\x7f", "a\u2029b"]
    for name in refused:
        out = p.process(f"vigil/readings/{name}/s", payload, NOW)
        assert (out.events, [d.reason for d in out.dead]) == ([], ["name"]), name


@pytest.mark.parametrize(
    ("value", "unit", "metric"),
    [(1e305, "kW", "power"), (1e307, "psi", "pressure"), (1e306, "bar", "pressure"), (1e308, "kPa", "pressure"),
     (1e307, "inHg", "pressure"), (1e306, "MWh", "energy"), (1e306, "kV", "voltage"), (1e17, "kW", "power"),
     (-1e16, "kV", "voltage"), (10**300, "kW", "power")],
)
def test_values_finite_as_sent_but_not_after_conversion_are_refused(value: float, unit: str, metric: str) -> None:
    with pytest.raises(Refusal) as err:
        normalize(raw(value, unit, metric))
    assert err.value.reason == "value"
    assert "within ±1e+18" in err.value.detail and unit in err.value.detail


@pytest.mark.parametrize("value", [1e19, -1e300, 10**400])
def test_values_beyond_the_bound_are_refused_before_any_conversion(value: object) -> None:
    with pytest.raises(Refusal) as err:
        normalize(raw(value, "W", "power"))
    assert err.value.reason == "value"


def test_invisible_characters_in_names_labels_and_units_are_refused() -> None:
    for kw in ({"device": "free\u200bzer"}, {"sensor": "t\u202e0"}, {"labels": (("room", "lab\u2066"),)}):
        with pytest.raises(Refusal) as err:
            normalize(raw(**kw))
        assert err.value.reason == "name" and "U+" in err.value.detail
    with pytest.raises(Refusal) as unit:
        normalize(raw(1.0, "\ud800", "foo"))
    assert unit.value.reason == "unit"
