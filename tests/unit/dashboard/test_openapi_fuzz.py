"""Requests generated from the served OpenAPI document (schemathesis) for the routes whose inputs it
describes: none that the document calls valid is refused with a 4xx, except 401/403 (credentials), 413
(size) and the refusals that one field cannot state alone, which the document says in words (listed)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core import NotSet

from tests.support.dashboard_app import INGEST_TOKEN, VIEWER_TOKEN, Harness

# What a request may still be refused for, though each field is as the document says: relations between
# fields (said in their descriptions: start before end, a device and sensor named somewhere, a unit the
# bridge knows that converts to the metric's, a source time near the time it is received) and what JSON
# Schema cannot say (UTF-8 bytes of a name, a real calendar day, code points unassigned in the bridge's
# Unicode version, and an integer written 0.0: JSON Schema's "integer" takes it, the contract's model does not).
ACROSS_FIELDS = ("must be after", "more than 1,000,000 buckets", "longer than 128 bytes", "day is out of range",
                 "name the device and sensor", "does not convert to", "is not a unit", "unassigned character",
                 "ts_past:", "ts_future:", "seq: expected an integer")


def generated(operation: Any, n: int) -> list[Any]:
    out: list[Any] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def collect(case: Any) -> None:
        out.append(case)

    collect()
    return out


@pytest.mark.parametrize(("path", "method", "token"), [("/api/v1/history", "GET", VIEWER_TOKEN),
                                                        ("/api/v1/readings", "POST", INGEST_TOKEN)])
async def test_what_the_document_calls_valid_is_accepted(harness: Harness, path: str, method: str,
                                                         token: str) -> None:
    doc = (await harness.client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})).json()
    operation = schemathesis.openapi.from_dict(doc)[path][method]
    spec = doc["paths"][path][method.lower()]
    params = {p["name"]: jsonschema.Draft202012Validator(p["schema"]) for p in spec["parameters"]}
    body_schema = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")

    def valid(query: dict[str, Any], body: Any) -> bool:
        # what the document calls valid, read by jsonschema (Python's re): the generator strays at times
        return all(params[k].is_valid(v) for k, v in query.items()) and (
            body_schema is None or jsonschema.Draft202012Validator(body_schema).is_valid(body))

    refused, sent = [], 0
    for case in generated(operation, 300):
        query = {k: v for k, v in (case.query or {}).items() if k not in ("format", "topic")}
        if not valid(query, None if isinstance(case.body, NotSet) else case.body):
            continue
        sent += 1
        body = None if isinstance(case.body, NotSet) or method == "GET" else json.dumps(case.body).encode()
        r = await harness.client.request(method, path, params=query, content=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if 400 <= r.status_code < 500 and r.status_code not in (401, 403, 413) \
                and not any(words in r.text for words in ACROSS_FIELDS):
            refused.append((r.status_code, query, case.body, r.text[:300]))
    assert sent >= 40 and not refused, (sent, refused[:5])
