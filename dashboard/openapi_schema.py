"""What the OpenAPI document says of the API's inputs, from the contract's JSON Schema, so that a request
the document calls valid is one the API takes (tests/unit/dashboard/test_openapi_fuzz.py holds them together).

The checks themselves stay the code's (vigil.core.topics.validate_segment, vigil.core.reading.Reading), with their
messages; these are their published form.
"""

from __future__ import annotations

from typing import Any

from vigil.core.reading import reading_schema

__all__ = ["NAME_RULE", "READINGS_BODY", "RFC3339", "TOPIC_LEVEL"]

_CONTRACT = reading_schema()

TOPIC_LEVEL: dict[str, Any] = {k: _CONTRACT["$defs"]["topicLevel"][k] for k in ("minLength", "maxLength", "pattern")}
NAME_RULE = ("1-128 UTF-8 bytes, no '+', '#' or '/', no leading '$', no invisible, control or unassigned "
             "character (the contract's topicLevel)")

# RFC 3339 as the API reads it: a year from 1971 (a time before 1970 is negative epoch seconds, refused), a
# real month, a day of 01-31 (a day past its month's end is refused in words), an offset under 24 hours.
RFC3339 = (r"^(197[1-9]|19[89]\d|[2-9]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:"
           r"[0-5]\d(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$")
_TS = {**_CONTRACT["properties"]["ts"], "oneOf": [
    _CONTRACT["properties"]["ts"]["oneOf"][0], {"type": "string", "format": "date-time", "pattern": RFC3339}]}

_READING: dict[str, Any] = {
    "type": "object",
    "description": "A reading as the contract defines it (vigil/core/schema/reading.schema.json), with its device and "
                   "sensor when the query does not name them (one or the other must). The unit must convert to the "
                   "metric's stored unit (°C for temperature, % for humidity, ...: docs/bridge.md), and the source "
                   "time be near the time it is received (the bridge's bounds on a reading's age and lead), "
                   "as the bridge requires. `seq` is written as an integer (7, not 7.0).",
    "properties": {**_CONTRACT["properties"], "ts": _TS,
                   "device": {**TOPIC_LEVEL, "type": "string", "description": NAME_RULE},
                   "sensor": {**TOPIC_LEVEL, "type": "string", "description": NAME_RULE}},
    "required": _CONTRACT["required"],
    "additionalProperties": False,
}

READINGS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One reading or a non-empty array of them (at most `dashboard.max_batch`, else 413). "
                       "Without `format`, the contract's JSON; with `format`, that format's payload (any bytes).",
        "content": {"application/json": {"schema": {"oneOf": [
            _READING, {"type": "array", "items": _READING, "minItems": 1}]}}},
    },
}
