"""The write side of ``/api/v1``: acknowledge, notes, silence, rules check and reload, and HTTP ingest.

Every action goes through MQTT, so the rule engine and every other dashboard agree on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from vigil.core.durations import parse_duration
from vigil.core.errors import BadRequest
from vigil.core.topics import invisible_character

from .auth import AuthError, Principal
from .context import Admin, ApiError, Reader, ctx_of
from .feed import BrokerUnavailable
from .ingest import IngestError, parse_contract_body, parse_format_body
from .openapi_schema import NAME_RULE, READINGS_BODY, TOPIC_LEVEL
from .ports import RulesInvalid
from .preview import RANGES, PreviewError, preview_rule
from .rules_edit import EditError, apply_edits, rule_fields
from .rules_view import (
    StalePlaceholder,
    checked,
    checked_files,
    mask_result,
    mask_secrets,
    rules_files,
    unmask_secrets,
    write_rules_file,
)

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field("", max_length=500)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000, description="what was done, e.g. moved the stock to freezer 2")


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: dict[str, str] = Field(min_length=1, max_length=16)
    duration: str = Field("1h", description="e.g. 30m, 2h, 1d")
    comment: str = Field("", max_length=500)


class RulesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(max_length=255)
    text: str = Field(max_length=1_000_000)


class EditBody(RulesBody):
    rule: str = Field(max_length=200)
    fields: dict[str, Optional[str]] = Field(max_length=32)


class PreviewBody(RulesBody):
    rule: str = Field(max_length=200)
    range: Literal["24h", "7d"] = "24h"


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


@router.post("/alerts/{rule}/{series:path}/ack", tags=["alerts"])
async def acknowledge(request: Request, who: Admin, rule: str, series: str,
                      body: AckBody) -> dict[str, Any]:
    """Acknowledge an alert: published on ``<root>/ack/<rule>/<series>`` for the rule engine."""
    ctx = ctx_of(request)
    if f"{rule}/{series}" not in ctx.live.alerts:
        raise ApiError(404, f"no alert {rule}/{series} is known")
    topic = ctx.live.topics.ack(rule, series)
    await ctx.publisher.publish(topic, _dumps({"by": who.name, "comment": body.comment, "at": ctx.clock.now(),
                                               "via": "dashboard"}))
    ctx.counters["acknowledged"] += 1
    log.info("%s acknowledged %s/%s", who.name, rule, series)
    return {"acknowledged": f"{rule}/{series}", "by": who.name}


def text_problem(text: str) -> Optional[str]:
    """Why a note cannot be recorded as written (the rule engine refuses the same): an invisible or control
    character other than line breaks and tabs; None when it is plain text."""
    problem = invisible_character(text.replace("\n", "").replace("\t", "").replace("\r", ""))
    return f"{problem}; write plain text" if problem else None


@router.post("/alerts/{rule}/{series:path}/notes", tags=["alerts"], status_code=201)
async def add_note(request: Request, who: Admin, rule: str, series: str, body: NoteBody) -> dict[str, Any]:
    """Record a corrective action on an alert (what was done): published on ``<root>/notes/<rule>/<series>`` for
    the rule engine, which keeps it in the alert's history (its ledger) and on the alert's ``notes``."""
    ctx = ctx_of(request)
    text = body.text.strip()
    if not text:
        raise BadRequest("text: write what was done; it is empty")
    problem = text_problem(text)
    if problem:
        raise BadRequest(f"text: {problem}")
    if f"{rule}/{series}" not in ctx.live.alerts:
        raise ApiError(404, f"no alert {rule}/{series} is known")
    note = {"id": secrets.token_hex(8), "by": who.name[:64], "text": text}
    await ctx.publisher.publish(ctx.live.topics.notes(rule, series), _dumps(note), qos=1)
    ctx.counters["notes"] += 1
    log.info("%s added a note to %s/%s", who.name, rule, series)
    return {"note": note, "alert": f"{rule}/{series}"}


@router.post("/silences", tags=["alerts"], status_code=201)
async def create_silence(request: Request, who: Admin, body: SilenceBody) -> dict[str, Any]:
    """Silence alerts whose labels match for a duration (retained on ``<root>/silences/<id>``)."""
    ctx = ctx_of(request)
    try:
        seconds = parse_duration(body.duration)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not 0 < seconds <= 366 * 86400:
        raise BadRequest("duration must be between 1s and 366d")
    sid = secrets.token_hex(6)
    now = ctx.clock.now()
    data = {"matchers": body.matchers, "until": now + seconds, "by": who.name, "comment": body.comment,
            "created": now}
    await ctx.publisher.publish(ctx.live.topics.silence(sid), _dumps(data), retain=True)
    ctx.counters["silenced"] += 1
    return {"id": sid, **data}


@router.delete("/silences/{sid}", tags=["alerts"])
async def expire_silence(request: Request, who: Admin, sid: str) -> dict[str, Any]:
    """Expire a silence now: an empty retained message deletes it."""
    ctx = ctx_of(request)
    if sid not in ctx.live.silences:
        raise ApiError(404, f"no silence {sid} is known")
    await ctx.publisher.publish(ctx.live.topics.silence(sid), b"", retain=True)
    log.info("%s expired silence %s", who.name, sid)
    return {"expired": sid}


@router.get("/mute-windows", tags=["alerts"])
async def mute_windows(request: Request, _: Reader) -> dict[str, list[dict[str, Any]]]:
    """Mute windows (quiet hours) and fixed silences from the rules files."""
    ctx = ctx_of(request)
    quiet = await asyncio.to_thread(ctx.rules.quiet, ctx.rules_path)
    masked: dict[str, list[dict[str, Any]]] = mask_result(quiet, "")
    return masked


@router.get("/rules", tags=["rules"])
async def rules(request: Request, _: Reader) -> dict[str, Any]:
    """The rules files, each rule with how many series are pending and firing."""
    ctx = ctx_of(request)
    # Off the event loop: checking many rules takes long enough to stall every request and stream
    # (docs/proof.md, YAML loading).
    out_files = await asyncio.to_thread(checked_files, ctx.rules, ctx.rules_path)
    counts: dict[str, dict[str, int]] = {}
    for a in ctx.live.alerts.values():
        c = counts.setdefault(a["rule"], {"pending": 0, "firing": 0})
        if a["state"] in c:
            c[a["state"]] += 1
    names = [r for f in out_files for r in f["rules"]]
    for extra in map(mask_secrets, counts):
        if extra not in names:
            names.append(extra)
    return {"path": str(ctx.rules_path), "files": out_files,
            "rules": [{"name": n, **counts.get(n, {"pending": 0, "firing": 0})} for n in names]}


def _unmasked(text: str, target: Path) -> tuple[str, str]:
    """The edited text with the file's URLs put back, and the file as it is on disk.

    A file whose every line ends in CRLF keeps them: the page (and a browser's textarea) has LF only.
    """
    raw = target.read_bytes()
    original = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    try:
        text = unmask_secrets(text, original)
    except StalePlaceholder as exc:
        raise ApiError(409, str(exc)) from None
    if b"\r\n" in raw and raw.count(b"\r\n") == raw.count(b"\n") and "\r" not in text:
        text = text.replace("\n", "\r\n")
    return text, original


def _target(request: Request, file: str) -> Path:
    files = rules_files(ctx_of(request).rules_path)
    if file not in files:  # only files already there: a name cannot walk out of the rules folder
        raise ApiError(404, f"no rules file {file!r}; known: {', '.join(files) or 'none'}")
    return files[file]


@router.post("/rules/validate", tags=["rules"])
async def validate_rules(request: Request, _: Reader, body: RulesBody) -> dict[str, Any]:
    """Check an edited rules file as ``vigil rules check`` would, without saving it."""
    rules = ctx_of(request).rules
    text, original = _unmasked(body.text, _target(request, body.file))

    def check() -> dict[str, Any]:  # a large file takes seconds to parse: off the event loop
        return {**checked(rules, text, body.file, original), "forms": rule_fields(body.text, rules.hostile)}

    return await asyncio.to_thread(check)


@router.post("/rules/reload", tags=["rules"])
async def reload_rules(request: Request, who: Admin, body: RulesBody) -> dict[str, Any]:
    """Save a rules file and ask the engine to reload; an invalid set is refused (422) and not saved."""
    ctx = ctx_of(request)
    target = _target(request, body.file)
    text, original = _unmasked(body.text, target)
    result = await asyncio.to_thread(checked, ctx.rules, text, body.file, original)
    if not result["ok"]:
        raise IngestError(422, "the rules have errors; nothing was saved", [{"error": i} for i in result["issues"]])
    await asyncio.to_thread(write_rules_file, target, text)
    await ctx.publisher.publish(ctx.live.topics.rules_reload, _dumps({"by": who.name, "file": body.file}))
    log.info("%s saved %s and asked for a rules reload", who.name, body.file)
    return {"saved": body.file, "reloaded": True, **result}


@router.post("/rules/edit", tags=["rules"])
async def edit_rule(request: Request, _: Reader, body: EditBody) -> dict[str, Any]:
    """Change a rule's common keys in the edited text (the form); returns the new text, checked, not saved.

    Only the changed values' bytes move: comments, order and formatting stay as written.
    """
    rules = ctx_of(request).rules
    target = _target(request, body.file)
    try:
        edited = await asyncio.to_thread(apply_edits, body.text, body.rule, body.fields, rules.hostile)
    except EditError as exc:
        raise BadRequest(f"not changed: {exc}") from None
    text, original = _unmasked(edited, target)

    def check() -> dict[str, Any]:
        return {"text": edited, **checked(rules, text, body.file, original),
                "forms": rule_fields(edited, rules.hostile)}

    return await asyncio.to_thread(check)


@router.post("/rules/preview", tags=["rules"])
async def preview(request: Request, who: Admin, body: PreviewBody) -> dict[str, Any]:
    """What an edited, unsaved rule would have done over the stored history (24h or 7d); sends nothing.

    The same code as ``vigil rules backtest``: the rule alone, replayed on a manual clock.
    """
    ctx = ctx_of(request)
    text, original = _unmasked(body.text, _target(request, body.file))
    end = ctx.clock.now()
    try:
        result = await asyncio.to_thread(preview_rule, ctx.rules, text, body.file, body.rule, ctx.store,
                                         end - RANGES[body.range], end)
    except PreviewError as exc:
        raise BadRequest(str(exc)) from None
    except RulesInvalid as exc:
        issues: list[str] = mask_result([i.text for i in exc.issues], original)
        raise ApiError(422, "the rules have errors; fix them to preview", [{"error": i} for i in issues]) from None
    ctx.counters["rule_previews"] += 1
    masked: dict[str, Any] = mask_result(result, original)
    return masked


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise IngestError(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest_principal(request: Request, body: bytes) -> Principal:
    ctx = ctx_of(request)
    sig = request.headers.get("x-vigil-signature")
    if sig is not None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return ctx.auth.signature(request.headers.get("x-vigil-key", ""),
                                  request.headers.get("x-vigil-timestamp", ""), sig, path, body)
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError(401, "send 'Authorization: Bearer <token>' or an X-Vigil-Signature")
    return ctx.auth.token(value.strip())


@router.post("/readings", tags=["ingest"], status_code=202, openapi_extra=READINGS_BODY)
async def ingest(request: Request,
                 device: Optional[str] = Query(None, description=f"when the readings do not name it: {NAME_RULE}",
                                               json_schema_extra=TOPIC_LEVEL),
                 sensor: Optional[str] = Query(None, description=f"when the readings do not name it: {NAME_RULE}",
                                               json_schema_extra=TOPIC_LEVEL),
                 format: Optional[str] = Query(None, description="one of the bridge's formats (default: the "
                                               "contract's JSON)"),
                 topic: Optional[str] = Query(None, description="with `format`: the MQTT topic the device would "
                                              "have used")) -> dict[str, Any]:
    """Readings from things that cannot speak MQTT, published on ``<root>/readings/...`` once the broker has them.

    The body is the contract's JSON (one reading or an array; device and sensor from the query or
    each reading), or with ``format=`` a payload of one of the bridge's formats and ``topic=``.
    """
    ctx = ctx_of(request)
    body = await _read_body(request, ctx.settings.max_body_bytes)
    who = _ingest_principal(request, body)
    if not who.allows("ingest"):
        raise AuthError(403, f"{who.name} may not ingest readings")
    if format in (None, "", "vigil", "json"):
        bridge = ctx.formats.parser("vigil_json") if ctx.formats else None
        out = parse_contract_body(body, ctx.live.topics, device, sensor, ctx.settings.max_batch, bridge,
                                  ctx.clock.now())
    else:
        if ctx.formats is None:
            raise IngestError(422, f"format={format} is not available here (the bridge's formats are not installed)")
        out = parse_format_body(body, format, topic, ctx.live.topics, ctx.formats.parser(format), ctx.clock.now())
    sem = asyncio.Semaphore(256)  # stay far below paho's 65,535 packet ids

    async def send(topic_: str, payload: bytes) -> None:
        async with sem:
            await ctx.publisher.publish(topic_, payload, qos=1)

    results = await asyncio.gather(*(send(o.topic, o.payload) for o in out), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        ctx.counters["ingest_failed"] += len(failed)
        ctx.counters["ingested"] += len(out) - len(failed)
        if isinstance(failed[0], BrokerUnavailable):
            raise BrokerUnavailable(f"{failed[0].reason}; {len(out) - len(failed)} of {len(out)} readings "
                                    "were published, send the rest again")
        raise failed[0]
    ctx.counters["ingested"] += len(out)
    return {"accepted": len(out), "by": who.name}
