"""The bridge reads Vigil JSON through the contract's model, straight from the bytes, with the
verdict the standard library's decoder and the model give together (``parse_reading``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker_bridge.formats import FORMATS
from broker_bridge.formats.vigil_json import _checked_slowly
from broker_bridge.settings import SourceSettings
from tests.support.pipeline import NOW, make_pipeline
from tests.support.strategies import readings
from vigil.core.reading import parse_reading
from vigil.core.refusal import Refusal

SOURCE = SourceSettings(name="vigil", format="vigil_json")
FIELDS = {"device": "d", "sensor": "s"}
GOOD = b'{"value": 21.5, "ts": 1700000000, "unit": "C", "metric": "temperature", "seq": 7, "labels": {"room": "a"}}'


def ours(payload: bytes) -> Any:
    try:
        return FORMATS["vigil_json"].parse("vigil/readings/d/s", payload, SOURCE, FIELDS)[0]
    except Refusal as exc:
        return exc


def contract(payload: bytes) -> Any:
    try:
        return parse_reading(payload)
    except Refusal as exc:
        return exc


def same_verdict(payload: bytes) -> None:
    """Accepted by both with the same fields, or refused by both; encoding and JSON faults alike."""
    a, b = ours(payload), contract(payload)
    if isinstance(b, Refusal):
        assert isinstance(a, Refusal), f"we accepted what the contract refuses ({b}): {payload!r}"
        # read from pydantic's own parse or the slow way (json.loads, then the model), the same words
        with pytest.raises(Refusal) as slow:
            _checked_slowly(payload)
        assert (slow.value.reason, slow.value.detail) == (a.reason, a.detail)
        if b.reason in ("encoding", "json"):
            assert a.reason == b.reason, (payload, a, b)
        else:
            assert a.reason in ("schema", "value", "ts"), (payload, a, b)
        return
    assert not isinstance(a, Refusal), f"we refused what the contract accepts: {payload!r}: {a}"
    assert (a.value, a.ts, a.unit, a.metric, a.seq) == (b.value, b.ts, b.unit, b.metric, b.seq)
    assert type(a.value) is type(b.value)
    assert dict(a.labels) == b.labels


# JSON texts where a parser could go its own way: each must get the standard library's verdict.
ODD = [
    b'{"value": NaN, "ts": 1, "unit": "C"}',
    b'{"value": -Infinity, "ts": 1, "unit": "C"}',
    b'{"value": NaN, "value": 1, "ts": 1, "unit": "C"}',  # a repeated key hiding a NaN
    b'{"value": 1, "ts": 1, "unit": "C", "labels": {"x": "NaN"}}',  # the word in a string is fine
    b'{"value": 1, "value": 2, "ts": 1, "unit": "C"}',
    b'{"value": 1e400, "ts": 1, "unit": "C"}',
    b'{"value": 1e-400, "ts": 1, "unit": "C"}',
    b'{"value": -0.0, "ts": 1, "unit": "C"}',
    b'{"value": 1.0, "ts": 1, "unit": "C", "seq": 1.0}',
    b'{"value": ' + b"9" * 400 + b', "ts": 1, "unit": "C"}',
    b'{"value": 1, "ts": ' + b"9" * 400 + b', "unit": "C"}',
    b'{"value": 1, "ts": 1, "unit": "C", "seq": ' + b"9" * 400 + b"}",
    b'{"value": 1, "ts": 1, "unit": "\\u00e9\\/"}',
    b'{"value": 1, "ts": 1, "unit": "C", "metric": "t\\udfff"}',
    b'{"value": 1, "ts": 1, "unit": "C", "labels": {"a\\ud800": "x"}}',
    b'{"value": 1, "ts": 1, "unit": "C", "labels": {"a": "x\\ud800"}}',
    b'{"value": 1, "ts": 1, "unit": "C", "\\ud800": 1}',
    b'{"value": 1, "ts": 1, "unit": "C\x01"}',
    b'{"value": 1, "ts": 1, "unit": "C\x7f"}',
    b'{"value": 1, "ts": 1, "unit": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
    b'{"value": 1, "ts": 1, "unit": "\xc0\xaf"}',  # an overlong encoding
    b'\xef\xbb\xbf{"value": 1, "ts": 1, "unit": "C"}',  # a byte-order mark
    '{"value": 1, "ts": 1, "unit": "C"}'.encode("utf-16"),
    b' \n\t{"value": 1, "ts": 1, "unit": "C"}\r\n',
    b'{"value": 1, "ts": 1, "unit": "C"}\x00',
    b'{"value": 1, "ts": 1, "unit": "C",}',
    b'{"value": 01, "ts": 1, "unit": "C"}',
    b'{"value": 1., "ts": 1, "unit": "C"}',
    b'{"value": +1, "ts": 1, "unit": "C"}',
    b'{"value": 1, "ts": "2023-11-14T22:13:00.123456789+01:00", "unit": "C"}',
    b'{"value": 1, "ts": "0001-01-01T00:00:00+01:00", "unit": "C"}',
    b'{"value": true, "ts": true, "unit": 1, "metric": "a b", "seq": -1, "labels": [], "extra": 1}',
    b'{"labels": {"a": "\\u200b"}, "value": 1, "ts": 1, "unit": "C"}',
    b"[" * 32 + b"]" * 32,
    b"",
    b"null",
]


@pytest.mark.parametrize("payload", ODD, ids=range(len(ODD)))
def test_odd_json_gets_the_standard_librarys_verdict(payload: bytes) -> None:
    same_verdict(payload)


@pytest.mark.parametrize("payload", [b'{"value": NaN, "value": 1, "ts": 1, "unit": "C"}',
                                     b'{"value": 1, "ts": 1, "unit": "C", "seq": Infinity, "seq": 2}'])
def test_a_repeated_key_cannot_hide_a_number_json_has_not(payload: bytes) -> None:
    got = ours(payload)
    assert isinstance(got, Refusal) and got.reason == "json", got
    assert "is not a number JSON allows" in got.detail


@pytest.mark.parametrize("payload", [b"[" * 33 + b"]" * 33, b'{"value": 1, "ts": 1, "unit": "C", "labels": {"a": '
                                     + b"[" * 40 + b"]" * 40 + b"}}"])
def test_the_bridge_bounds_the_nesting_before_any_parser(payload: bytes) -> None:
    got = ours(payload)
    assert (got.reason, got.detail) == ("json", "payload is nested more than 32 levels deep")


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"value": 1, "ts": 1699999999, "unit": "\\ud800", "metric": "foo"}', "unit"),
    (b'{"value": 1, "ts": 1699999999, "unit": "\\ud800"}', "unit"),
    (b'{"value": 1, "ts": "soon", "unit": "\\ud800"}', "ts"),  # the format's own checks come first
    (b'{"value": 1, "ts": 1699999999, "unit": "' + b"\\ud800" * 17 + b'"}', "schema"),  # too long all the same
])
def test_a_unit_with_a_lone_surrogate_is_left_to_the_unit_table(payload: bytes, reason: str) -> None:
    # JSON allows the escape, pydantic cannot hold it; the format passes it on as it does any unit string
    out = make_pipeline().process("vigil/readings/d/s", payload, NOW)
    assert [d.reason for d in out.dead] == [reason], out.dead


def test_the_contract_model_refuses_huge_integers_instead_of_overflowing() -> None:
    # float() of a 400-digit integer raises OverflowError, which pydantic does not turn into a refusal
    for payload in (b'{"value": ' + b"9" * 400 + b', "ts": 1, "unit": "C"}',
                    b'{"value": 1, "ts": ' + b"9" * 400 + b', "unit": "C"}'):
        with pytest.raises(Refusal) as err:
            parse_reading(payload)
        assert err.value.reason == "schema"
    assert ours(b'{"value": 1, "ts": ' + b"9" * 400 + b', "unit": "C"}').reason == "ts"


# Small edits of a good payload: bytes that matter to a JSON parser, put in, taken out or replaced.
_BYTES = st.sampled_from([b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"0", b"1", b"-", b".", b"e",
                          b"E", b"+", b"N", b"a", b"I", b"\x00", b"\x1f", b"\xff", b"\xc3", b"\\u", b"d8", b"00"])


@st.composite
def edited(draw: st.DrawFn) -> bytes:
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(_BYTES)
        if what == "insert":
            data[at:at] = piece
        elif what == "delete":
            del data[at:at + 1]
        else:
            data[at:at + len(piece)] = piece
    return bytes(data)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(edited())
def test_edited_payloads_get_the_standard_librarys_verdict(payload: bytes) -> None:
    same_verdict(payload)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["repr", "17g", "e"]))
def test_numbers_are_read_to_the_same_float(x: float, style: str) -> None:
    text = repr(x) if style == "repr" else format(x, ".17g") if style == "17g" else format(x, ".12e")
    payload = b'{"value": %s, "ts": 1, "unit": "C"}' % text.encode()
    got = ours(payload)
    if abs(json.loads(text)) > 1e18:
        assert isinstance(got, Refusal) and got.reason == "value"
    else:
        assert got.value == json.loads(text)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(readings)
def test_a_refusal_says_the_same_read_either_way(data: dict[str, Any]) -> None:
    same_verdict(json.dumps(data).encode())
