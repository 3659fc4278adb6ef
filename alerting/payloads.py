"""Payloads of the topics the rule engine consumes besides events: device status and control messages
(acknowledgements, corrective-action notes), each parsed within a size and depth bound."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from vigil.core.jsonlimits import decode, too_deep
from vigil.core.topics import invisible_character

__all__ = ["MAX_PAYLOAD", "VIAS", "Ack", "Note", "loads", "parse_ack", "parse_note", "parse_status"]

#: how an acknowledgement came: a signed link, the dashboard, any MQTT client
VIAS = ("link", "dashboard", "mqtt")
MAX_NOTE_ID, MAX_NOTE_BY, MAX_NOTE_TEXT = 64, 64, 2000


@dataclass(frozen=True, slots=True)
class Ack:
    """``<root>/ack/<rule>/<series>``: {"by", "comment", "episode": float|null, "via", "note": str|null}."""

    by: str
    comment: str
    episode: Optional[float] = None
    via: str = "mqtt"
    note: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Note:
    """``<root>/notes/<rule>/<series>``: a corrective action {"id", "by", "text"}."""

    id: str
    by: str
    text: str


def _text(data: dict[str, Any], name: str, limit: int, *, name_like: bool) -> str:
    v = data.get(name)
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(v) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    problem = invisible_character(v if name_like else v.replace("\n", "").replace("\t", "").replace("\r", ""))
    if problem:
        raise ValueError(f"{name}: {problem}")
    return v


def parse_note(payload: bytes) -> Union[Note, str]:
    """A note, or why it is refused (a sentence)."""
    try:
        data = loads(payload)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict):
        return 'expected {"id": ..., "by": ..., "text": ...}'
    try:
        return Note(_text(data, "id", MAX_NOTE_ID, name_like=True), _text(data, "by", MAX_NOTE_BY, name_like=True),
                    _text(data, "text", MAX_NOTE_TEXT, name_like=False))
    except ValueError as exc:
        return str(exc)


def parse_ack(payload: bytes) -> Union[Ack, str]:
    """An acknowledgement, or why it is refused. ``by`` and ``comment`` are taken as before (any value, as text,
    cut to 100 and 1000 characters; an empty payload is someone's); ``episode``, ``via`` and ``note`` are checked."""
    try:
        data = loads(payload) if payload.strip() else {}
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict):
        return 'expected {"by": ..., "comment": ...}'
    episode = data.get("episode")
    if episode is not None and (isinstance(episode, bool) or not isinstance(episode, (int, float))
                                or not math.isfinite(episode)):
        return "episode must be a number (the excursion's since) or null"
    via = data.get("via") or "mqtt"
    if via not in VIAS:
        return f"via must be one of {', '.join(VIAS)}"
    note = data.get("note")
    if isinstance(note, str) and not note.strip():
        note = None  # an empty note is no note
    if note is not None:
        try:
            note = _text(data, "note", MAX_NOTE_TEXT, name_like=False)
        except ValueError as exc:
            return str(exc)
    return Ack(str(data.get("by") or "someone")[:100], str(data.get("comment") or "")[:1000],
               None if episode is None else float(episode), via, note)

# Bounds what one payload may cost to parse; real events are a few hundred bytes.
MAX_PAYLOAD = 64 * 1024


def parse_status(payload: bytes) -> Optional[bool]:
    """``online``/``offline`` as text or JSON ({"status": ...} or {"state": ...}); None if neither."""
    text = payload[:MAX_PAYLOAD].decode("utf-8", "replace").strip()
    word = text.lower()
    if text.startswith("{"):
        try:
            data = loads(payload[:MAX_PAYLOAD])
        except ValueError:
            return None
        if isinstance(data, dict):
            word = str(data.get("status", data.get("state", ""))).lower()
    if word in ("online", "on", "true", "1", "up"):
        return True
    if word in ("offline", "off", "false", "0", "down", "lost"):
        return False
    return None


def loads(payload: bytes) -> Any:
    """JSON of a control or status message, bounded in depth (and by MAX_PAYLOAD in size); ValueError if not."""
    if too_deep(payload):
        raise ValueError("nested too deeply")
    try:
        return decode(payload)
    except RecursionError as exc:  # too_deep's bound is far below the decoder's; kept as a second guard
        raise ValueError("nested too deeply") from exc

