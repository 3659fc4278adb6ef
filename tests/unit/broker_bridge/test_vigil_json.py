"""The hand-written Vigil JSON parser gives the same verdict as the contract's model and schema."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings

from broker_bridge.formats import FORMATS
from broker_bridge.settings import SourceSettings
from tests.support.strategies import (
    readings,
)
from vigil.core.reading import parse_reading, reading_schema
from vigil.core.refusal import Refusal

SOURCE = SourceSettings(name="vigil", format="vigil_json")
FIELDS = {"device": "d", "sensor": "s"}

def _ours(data: dict[str, Any]) -> Any:
    try:
        return FORMATS["vigil_json"].parse("vigil/readings/d/s", json.dumps(data).encode(), SOURCE, FIELDS)[0]
    except Refusal as exc:
        return exc


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(readings)
def test_same_verdict_as_the_contract_model(data: dict[str, Any]) -> None:
    ours = _ours(data)
    try:
        reading = parse_reading(data)
    except Refusal:
        assert isinstance(ours, Refusal), f"we accepted what the contract refuses: {data!r}"
        return
    assert not isinstance(ours, Refusal), f"we refused what the contract accepts: {data!r}: {ours}"
    assert ours.value == reading.value and math.isclose(ours.ts, reading.ts)
    assert (ours.unit, ours.metric, ours.seq) == (reading.unit, reading.metric, reading.seq)
    assert dict(ours.labels) == reading.labels


@settings(max_examples=300, deadline=None)
@given(readings)
def test_what_we_accept_the_published_schema_accepts(data: dict[str, Any]) -> None:
    if isinstance(_ours(data), Refusal):
        return
    jsonschema.validate(data, reading_schema())
