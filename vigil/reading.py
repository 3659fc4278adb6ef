"""The reading payload of the contract as a typed model, and the JSON Schema shipped beside it.

``vigil/schema/reading.schema.json`` is the published form; :class:`Reading` is the one the
code uses. ``tests/test_contract.py`` holds the two together.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from .event import MAX_ABS_VALUE
from .topics import invisible_character

__all__ = ["Reading", "ReadingError", "parse_reading", "parse_ts", "reading_schema"]

_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class ReadingError(ValueError):
    """A reading payload does not follow the contract; ``reason`` is a short machine-readable cause."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def parse_ts(value: Union[int, float, str]) -> float:
    """Epoch seconds from a number or an RFC 3339 string with an offset."""
    if isinstance(value, bool):
        raise ValueError("ts: expected epoch seconds or an RFC 3339 date-time, got a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
        if not math.isfinite(ts) or ts < 0:
            raise ValueError(f"ts: expected non-negative epoch seconds, got {value!r}")
        return ts
    if isinstance(value, str) and _RFC3339.match(value):
        text = value.replace("z", "Z").replace("Z", "+00:00")
        # fromisoformat before 3.11 takes at most 6 fraction digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        return datetime.fromisoformat(text).timestamp()
    raise ValueError(f"ts: expected epoch seconds or an RFC 3339 date-time with offset, got {value!r}")


class Reading(BaseModel):
    """One reading as an edge agent publishes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Union[StrictInt, StrictFloat]
    ts: float
    unit: Annotated[str, Field(min_length=1, max_length=16)]
    metric: Annotated[str, Field(pattern=_NAME)] = "temperature"
    seq: Annotated[int, Field(ge=0, le=2**53 - 1, strict=True)] | None = None
    labels: Annotated[dict[Annotated[str, Field(pattern=_NAME)], Annotated[str, Field(max_length=128)]],
                      Field(max_length=16)] = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if isinstance(v, bool) or not math.isfinite(v):
            raise ValueError("value must be a finite number")
        if not -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE:
            raise ValueError(f"value must be within ±{MAX_ABS_VALUE:g}")
        return v

    @field_validator("labels")
    @classmethod
    def _visible(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            problem = invisible_character(text)
            if problem:
                raise ValueError(f"labels.{key}: {problem}")
        return v

    @field_validator("ts", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> float:
        return parse_ts(v)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_reading(payload: bytes | str | dict[str, Any]) -> Reading:
    """Parse a reading payload (JSON bytes, text or an already decoded object).

    Raises ReadingError with reason ``encoding``, ``json`` or ``schema``.
    """
    if isinstance(payload, dict):
        data: Any = payload
    else:
        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        except UnicodeDecodeError as exc:
            raise ReadingError("encoding", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ReadingError("json", f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ReadingError("schema", f"expected a JSON object, got {type(data).__name__}")
    try:
        return Reading.model_validate(data)
    except ValidationError as exc:
        raise ReadingError("schema", _describe(exc)) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


@lru_cache(maxsize=1)
def reading_schema() -> dict[str, Any]:
    """The shipped JSON Schema of a reading."""
    text = resources.files("vigil").joinpath("schema/reading.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
