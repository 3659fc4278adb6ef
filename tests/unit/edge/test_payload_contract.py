"""The edge's payload builder holds to the shipped JSON Schema and to vigil.core.reading."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.payload import build_payload
from vigil.core.reading import parse_reading, reading_schema

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fullmatch=True)
validator = jsonschema.Draft202012Validator(reading_schema())


@given(
    value=st.one_of(st.floats(-1e18, 1e18), st.integers(-(10**15), 10**15)),  # the contract's bound: ±1e18
    ts=st.floats(min_value=0, max_value=4e9),
    unit=st.text(min_size=1, max_size=16),
    metric=names,
    seq=st.integers(0, 2**53 - 1),
    # Label values are visible text (the contract refuses Cc, Cf, Co, Cs, Zl, Zp characters).
    labels=st.dictionaries(names, st.text(st.characters(blacklist_categories=("Cc", "Cf", "Co", "Cs", "Zl", "Zp")),
                                          max_size=128), max_size=16),
)
def test_every_payload_validates_against_the_schema_and_the_model(value: float, ts: float, unit: str, metric: str,
                                                                  seq: int, labels: dict[str, str]) -> None:
    payload = build_payload(value, ts, unit, metric, seq, labels)
    validator.validate(json.loads(payload))
    reading = parse_reading(payload)
    assert reading.value == value and reading.seq == seq and reading.metric == metric
    assert reading.unit == unit and dict(reading.labels) == labels
    assert math.isclose(reading.ts, ts, abs_tol=0.0006)


def test_a_typical_payload_reads_as_the_contract_says() -> None:
    payload = build_payload(-18.25, 1700000000.1234, "°C", "temperature", 7, {"site": "shop"})
    assert json.loads(payload) == {"value": -18.25, "ts": 1700000000.123, "unit": "°C", "metric": "temperature",
                                   "seq": 7, "labels": {"site": "shop"}}
    assert "°C".encode() in payload


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "21.5", None])
def test_values_the_contract_forbids_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="finite number"):
        build_payload(value, 0, "°C", "temperature", 0)  # type: ignore[arg-type]
