"""Vigil's own reading JSON (the contract, ``vigil/core/schema/reading.schema.json``) on ``readings/{device}/{sensor}``.

Checked by the contract's own model, :class:`vigil.core.reading.Reading`, straight from the bytes
(pydantic's JSON parser; faster than the hand-written check it replaced: docs/proof.md, Figures
behind the code). A message it refuses that may not be JSON at all (or holds NaN or Infinity,
which pydantic's parser takes) is read again the slow way, ``json.loads`` then the model, so that
``encoding`` and ``json`` are said exactly as every other format says them. Otherwise the dead
letter names the first fault in the order a reader looks: the object's shape, a missing field,
``value`` (reason ``value``), unit, metric, seq, labels (``schema``), the time last (``ts``); its
words are the contract's own (:func:`vigil.core.reading.fault`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from vigil.core.jsonlimits import MAX_DEPTH, too_deep
from vigil.core.reading import Reading, fault
from vigil.core.refusal import Refusal

from ._base import FALLBACK_SENSOR, Options, RawReading, base_names, load_json, need_device

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["VigilJson"]

_validate_json = Reading.model_validate_json
_FIELDS = tuple(Reading.model_fields)
# The fault a dead letter names, of all the model finds: the object's shape first (not an object, an unknown
# key), then a missing field, then the values in this order, the time last.
_SHAPE = {"model_type": 0, "extra_forbidden": 1}
_VALUES = ("value", "unit", "metric", "seq", "labels", "ts")


class VigilJson:
    """``{"value": 21.5, "ts": 1700000000.0, "unit": "°C", "metric": "temperature", "seq": 7}``."""

    name = "vigil_json"
    summary = "Vigil's JSON"
    options = Options
    usual_topic = None  # the built-in source's: <root>/readings/{device}/{sensor}

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        if too_deep(payload):
            raise Refusal("json", f"payload is nested more than {MAX_DEPTH} levels deep")
        try:
            reading = _validate_json(payload)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            # pydantic's parser takes NaN and Infinity, which JSON has not: the standard library's says why
            if errors[0]["type"] == "json_invalid" or b"NaN" in payload or b"Infinity" in payload:
                reading = _checked_slowly(payload)
            else:
                raise _refusal(errors) from None
        else:
            # the model refuses NaN and Infinity as values, but a repeated key could hide one
            if b"NaN" in payload or b"Infinity" in payload:
                reading = _checked_slowly(payload)
        device, sensor, _, captured = base_names(source, fields)
        pairs = tuple(reading.labels.items()) if reading.labels else ()
        return [
            RawReading(
                device=need_device(device, source),
                sensor=FALLBACK_SENSOR if sensor is None else sensor,
                metric=reading.metric,
                value=reading.value,
                ts=reading.ts,
                unit=reading.unit,
                seq=reading.seq,
                labels=captured + pairs if captured else pairs,
            )
        ]


def _checked_slowly(payload: bytes) -> Reading:
    """The standard library's decoding, then the model: the reading, or the Refusal that says why not."""
    data: Any = load_json(payload)
    if type(data) is not dict:
        raise Refusal("schema", f"expected a JSON object, got {type(data).__name__}")
    try:
        return Reading.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    if any(e["loc"] == ("unit",) and e["type"] == "string_unicode" for e in errors):
        # A unit holding a lone surrogate (JSON allows "\ud800"), which pydantic cannot take: like any
        # other string it is the unit table's to judge (normalize refuses it, reason "unit", after the names).
        unit = data["unit"]
        try:
            return Reading.model_validate({**data, "unit": "?" * len(unit)}).model_copy(update={"unit": unit})
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
    raise _refusal(errors)


def _refusal(errors: list[ErrorDetails]) -> Refusal:
    """The Refusal of the fault named first (see ``_SHAPE``): reason ``value``, ``ts`` or ``schema``."""
    first = min(errors, key=_order)
    rank, field = _order(first)
    reason = _VALUES[field] if rank == 3 and _VALUES[field] in ("value", "ts") else "schema"
    return Refusal(reason, fault(first))


def _order(err: ErrorDetails) -> tuple[int, int]:
    loc = err["loc"]
    if err["type"] in _SHAPE or not loc:  # no location: a key pydantic cannot take (a lone surrogate)
        return _SHAPE.get(err["type"], 1), 0
    if err["type"] == "missing":
        return 2, _FIELDS.index(str(loc[0]))
    return 3, _VALUES.index(str(loc[0]))
