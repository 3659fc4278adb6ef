"""The API trigger: readings posted over HTTP, validated like the bridge does, published on the bus.

Exceptions::

    IngestError          the body is refused; ``status`` (413/422) and ``problems`` say why
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from vigil.core import jsonlimits
from vigil.core.reading import Reading, parse_reading
from vigil.core.refusal import Refusal
from vigil.core.topics import TopicError, Topics, validate_segment

from .context import ApiError
from .ports import PayloadParser

__all__ = ["IngestError", "Outgoing", "parse_contract_body", "parse_format_body"]

log = logging.getLogger(__name__)

# Bodies are bounded before they get here (dashboard.max_body_bytes); this is the setting's own ceiling.
_MAX_BODY = 64 * 1024 * 1024


class IngestError(ApiError):
    """A refused ingest body: every problem with the index of the reading it concerns."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One valid reading and where it goes: ``<root>/readings/<device>/<sensor>``."""

    topic: str
    payload: bytes
    device: str = field(compare=False)
    sensor: str = field(compare=False)


def _contract_payload(reading: Reading) -> bytes:
    data = reading.model_dump(exclude_none=True)
    if not data.get("labels"):
        data.pop("labels", None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def parse_contract_body(body: bytes, topics: Topics, device: Optional[str], sensor: Optional[str], max_batch: int,
                        pipeline: Optional[PayloadParser] = None, received: float = 0.0) -> list[Outgoing]:
    """Readings in the contract's JSON: one object or an array; each may name its own device/sensor.

    With the bridge's ``pipeline``, each reading also passes the bridge's own checks (units, sensor
    error values, timestamps), so what the bridge would dead-letter is refused here with a 422.
    All or nothing: one bad reading refuses the whole body, so a client can simply retry it fixed.
    """
    try:
        body.decode("utf-8")
        data = jsonlimits.loads(body, _MAX_BODY)
    except UnicodeDecodeError as exc:
        raise IngestError(422, f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except jsonlimits.JsonRefused as exc:
        raise IngestError(422, f"the body is refused: {exc}") from exc
    except ValueError as exc:
        raise IngestError(422, f"the body is not JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    if not items:
        raise IngestError(422, "the batch is empty")
    if len(items) > max_batch:
        raise IngestError(413, f"a batch may hold at most {max_batch} readings, this one has {len(items)}")
    out: list[Outgoing] = []
    problems: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": i, "error": f"expected a JSON object, got {type(item).__name__}"})
            continue
        item = dict(item)
        dev = item.pop("device", device)
        sen = item.pop("sensor", sensor)
        try:
            if dev is None or sen is None:
                raise IngestError(422, "name the device and sensor: ?device=...&sensor=... or in the reading")
            topic = topics.readings(validate_segment(dev, "device"), validate_segment(sen, "sensor"))
            reading = parse_reading(item)
        except (TopicError, Refusal, IngestError) as exc:
            problems.append({"index": i, "error": str(exc)})
            continue
        payload = _contract_payload(reading)
        if pipeline is not None:
            dead = list(pipeline.process(topic, payload, received or time.time()).dead)
            if dead:
                problems.append({"index": i, "error": "; ".join(f"{d.reason}: {d.detail}" for d in dead)})
                continue
        out.append(Outgoing(topic, payload, dev, sen))
    if problems:
        n = len(problems)
        raise IngestError(422, f"{n} of {len(items)} reading{'s' if len(items) != 1 else ''} refused; "
                               "nothing was published", problems[:100])
    return out


def parse_format_body(body: bytes, fmt: str, topic: Optional[str], topics: Topics,
                      pipeline: PayloadParser, received: float = 0.0) -> list[Outgoing]:
    """A payload in one of the bridge's formats, normalized by the bridge's own pipeline."""
    if not topic:
        raise IngestError(422, f"format={fmt} needs the MQTT topic the device would have used: &topic=...")
    outcome = pipeline.process(topic, body, received or time.time())
    dead = list(outcome.dead)
    if dead:
        problems = [{"index": i, "error": f"{d.reason}: {d.detail}"} for i, d in enumerate(dead)]
        raise IngestError(422, f"{len(dead)} reading(s) refused by the {fmt} format; nothing was published",
                          problems[:100])
    out: list[Outgoing] = []
    for ev in outcome.events:
        data: dict[str, Any] = {"value": ev.value, "ts": ev.ts, "unit": ev.unit or "-", "metric": ev.metric}
        if ev.seq is not None:
            data["seq"] = ev.seq
        if ev.labels:
            data["labels"] = dict(ev.labels)
        try:  # what the bridge takes, the contract takes: a refusal here is still the caller's payload
            reading = parse_reading(data)
            where = topics.readings(ev.device, ev.sensor)
        except (Refusal, TopicError) as exc:
            raise IngestError(422, str(exc)) from exc
        out.append(Outgoing(where, _contract_payload(reading), ev.device, ev.sensor))
    if not out:
        raise IngestError(422, f"the {fmt} payload held no reading")
    return out
