"""The reading payload of the contract as a typed model, and the JSON Schema shipped beside it.

``vigil/core/schema/reading.schema.json`` is the published form; :class:`Reading` is the one the
code uses. ``tests/test_contract.py`` holds the two together.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, core_schema

from vigil.core import jsonlimits
from vigil.core.event import MAX_ABS_VALUE
from vigil.core.refusal import Refusal
from vigil.core.topics import invisible_character

__all__ = ["MAX_SEQ", "Reading", "fault", "parse_reading", "parse_ts", "reading_schema"]

MAX_SEQ = 2**53 - 1  # the largest integer a JSON reader that uses doubles keeps exactly
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_MAX_TS = sys.float_info.max
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_ts(value: Union[int, float, str]) -> float:
    """Epoch seconds from a number or an RFC 3339 string with an offset."""
    if isinstance(value, bool):
        raise ValueError("ts: expected epoch seconds or an RFC 3339 date-time, got a boolean")
    if isinstance(value, (int, float)):
        if not 0 <= value <= _MAX_TS:  # NaN fails too; compared before float(), which overflows on 400 digits
            raise ValueError(f"ts: expected non-negative epoch seconds, got {value!r:.40}")
        return float(value)
    if isinstance(value, str) and _RFC3339.match(value):
        text = value.replace("z", "Z").replace("Z", "+00:00")
        # fromisoformat before 3.11 takes at most 6 fraction digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        return datetime.fromisoformat(text).timestamp()
    raise ValueError(f"ts: expected epoch seconds or an RFC 3339 date-time with offset, got {value!r}")


def _ts_schema(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    # epoch seconds checked in pydantic-core (no Python call for the usual case), else RFC 3339 text
    return core_schema.union_schema([
        core_schema.float_schema(strict=True, ge=0, allow_inf_nan=False),
        core_schema.no_info_after_validator_function(parse_ts, core_schema.str_schema(strict=True)),
    ])


_LIMIT = int(MAX_ABS_VALUE)


def _int_in_range(value: Any) -> Any:
    # the float branch would take 10**18 + 1 as 1e18, within the bound; the schema compares exactly
    if type(value) is int and not -_LIMIT <= value <= _LIMIT:
        raise ValueError("out of range")
    return value


class Reading(BaseModel):
    """One reading as an edge agent publishes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # an int stays an int; bounds and finiteness are checked in pydantic-core, before any float()
    value: Annotated[Union[Annotated[int, Field(strict=True, ge=-_LIMIT, le=_LIMIT)],
                           Annotated[float, Field(strict=True, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE,
                                                  allow_inf_nan=False)]],
                     BeforeValidator(_int_in_range)]
    ts: Annotated[float, GetPydanticSchema(_ts_schema)]
    unit: Annotated[str, Field(min_length=1, max_length=16)]
    metric: Annotated[str, Field(pattern=_NAME)] = "temperature"
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)] | None = None
    labels: Annotated[dict[Annotated[str, Field(pattern=_NAME)], Annotated[str, Field(max_length=128)]],
                      Field(max_length=16)] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _visible(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            problem = invisible_character(text)
            if problem:
                raise ValueError(f"labels.{key}: {problem}")
        return v


_FIELDS = tuple(Reading.model_fields)
_EXPECTED = {
    "unit": "a string of 1-16 characters",
    "metric": "a name of letters, digits and _ (at most 64)",
    "seq": f"an integer 0-{MAX_SEQ}",
}


def fault(err: ErrorDetails) -> str:
    """One of the model's refusals in words: the field, what it should be, what it was."""
    loc, got = err["loc"], err["input"]
    field = str(loc[0]) if loc else ""
    if err["type"] == "model_type":
        return f"expected a JSON object, got {type(got).__name__}"
    if err["type"] == "missing":
        return f"{field}: this field is required"
    if err["type"] == "extra_forbidden" or not loc:  # no location: a key that is no string (a lone surrogate)
        return f"unknown field {(field or got)!r:.40} (allowed: {', '.join(sorted(_FIELDS))})"
    if field == "value":
        if type(got) in (int, float):
            return f"value must be a finite number within ±{MAX_ABS_VALUE:g}, got {got!r:.40}"
        return f"value: expected a number, got {got!r:.40}"
    if field == "ts":
        try:
            parse_ts(got)
        except ValueError as exc:
            return str(exc)
    if field in _EXPECTED:
        return f"{field}: expected {_EXPECTED[field]}, got {got!r:.40}"
    if field == "labels" and len(loc) == 1:
        if type(got) is not dict:
            return f"labels: expected an object, got {type(got).__name__}"
        if err["type"] == "too_long":
            return f"labels: at most 16, got {len(got)}"
    if field == "labels" and len(loc) == 3:  # ("labels", key, "[key]")
        return f"labels: name {loc[1]!r:.40} must be letters, digits and _ (at most 64)"
    if field == "labels" and len(loc) == 2:
        return f"labels.{loc[1]}: expected a string of at most 128 characters, got {got!r:.40}"
    error = err.get("ctx", {}).get("error")  # a validator's own ValueError names its field
    return str(error) if isinstance(error, ValueError) else f"{'.'.join(map(str, loc))}: {err['msg']}"


def _describe(exc: ValidationError) -> str:
    said: dict[str, None] = {}  # a union's branches each refuse: say it once
    for err in exc.errors(include_url=False):
        said.setdefault(fault(err))
    return "; ".join(said)


def parse_reading(payload: bytes | str | dict[str, Any]) -> Reading:
    """Parse a reading payload (JSON bytes, text or an already decoded object).

    Raises :class:`~vigil.core.refusal.Refusal` with reason ``encoding``, ``json`` or ``schema``.
    """
    if isinstance(payload, dict):
        data: Any = payload
    else:
        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        except UnicodeDecodeError as exc:
            raise Refusal("encoding", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        try:
            data = jsonlimits.decode(text)
        except ValueError as exc:
            raise Refusal("json", f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Refusal("schema", f"expected a JSON object, got {type(data).__name__}")
    try:
        return Reading.model_validate(data)
    except ValidationError as exc:
        raise Refusal("schema", _describe(exc)) from exc


@lru_cache(maxsize=1)
def reading_schema() -> dict[str, Any]:
    """The shipped JSON Schema of a reading."""
    text = resources.files("vigil.core").joinpath("schema/reading.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
