"""The hand-written Vigil JSON parser gives the same verdict as the contract's model and schema."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker_bridge.formats import FORMATS, FormatError
from broker_bridge.settings import SourceSettings
from vigil.core.reading import ReadingError, parse_reading, reading_schema

SOURCE = SourceSettings(name="vigil", format="vigil_json")
FIELDS = {"device": "d", "sensor": "s"}

names = st.one_of(st.sampled_from(["temperature", "humidity", "_x", "A1"]), st.text(max_size=70))
values = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
timestamps = st.one_of(
    st.floats(min_value=-10, max_value=2e9, allow_nan=False),
    st.integers(min_value=-10, max_value=2**40),
    st.sampled_from(["2023-11-14T22:13:00Z", "2023-11-14T22:13:00.123456789+01:00", "2023-11-14 22:13:00z",
                     "2023-11-14T22:13:00", "yesterday", ""]),
    st.booleans(),
)
label_maps = st.dictionaries(names, st.one_of(st.text(max_size=130), st.integers()), max_size=18)
units = st.one_of(st.sampled_from(["°C", "%", "K"]), st.text(max_size=18), st.integers())
optional = {
    "metric": names,
    "seq": st.one_of(st.integers(min_value=-2, max_value=2**54), st.floats(), st.booleans()),
    "labels": st.one_of(label_maps, st.lists(st.integers(), max_size=2)),
    "extra": st.integers(),
}
good_values = st.one_of(st.integers(min_value=-1000, max_value=1000), st.floats(-1e6, 1e6))
good = st.fixed_dictionaries(
    {"value": good_values, "ts": st.floats(0, 2e9), "unit": st.sampled_from(["°C", "%"])},
    optional={"metric": st.sampled_from(["temperature", "humidity"]), "seq": st.integers(0, 2**53 - 1),
              "labels": st.dictionaries(st.sampled_from(["site", "room"]), st.text(max_size=10), max_size=2)},
)
mixed = st.fixed_dictionaries({"value": values, "ts": timestamps, "unit": units}, optional=optional)
partial = st.fixed_dictionaries({}, optional={"value": values, "ts": timestamps, "unit": units, **optional})
readings = st.one_of(good, mixed, partial)


def _ours(data: dict[str, Any]) -> Any:
    try:
        return FORMATS["vigil_json"].parse("vigil/readings/d/s", json.dumps(data).encode(), SOURCE, FIELDS)[0]
    except FormatError as exc:
        return exc


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(readings)
def test_same_verdict_as_the_contract_model(data: dict[str, Any]) -> None:
    ours = _ours(data)
    try:
        reading = parse_reading(data)
    except ReadingError:
        assert isinstance(ours, FormatError), f"we accepted what the contract refuses: {data!r}"
        return
    assert not isinstance(ours, FormatError), f"we refused what the contract accepts: {data!r}: {ours}"
    assert ours.value == reading.value and math.isclose(ours.ts, reading.ts)
    assert (ours.unit, ours.metric, ours.seq) == (reading.unit, reading.metric, reading.seq)
    assert dict(ours.labels) == reading.labels


@settings(max_examples=300, deadline=None)
@given(readings)
def test_what_we_accept_the_published_schema_accepts(data: dict[str, Any]) -> None:
    if isinstance(_ours(data), FormatError):
        return
    jsonschema.validate(data, reading_schema())
