"""Acknowledge from the phone: the signed link's page (``GET /ack/<token>``) and its one use (``POST``).

No login: the token is the permission (``vigil.core.acklink``: signed by the rule engine's delivery for
one person and one excursion, with an expiry). A GET only shows the alert, so a link previewer or a
mail scanner that opens the link acknowledges nothing; a POST (the page's form, or ntfy's ``http``
action button with an empty body) uses it: its nonce is kept in ``<data_dir>/dashboard-links.db``
until the link expires, so a second use is refused (410) with who used it and when.

Answers: 200 the page or "Acknowledged by ana at 03:12"; 400 a malformed token or body; 403 a changed
token (no alert details shown); 404 no such alert now; 409 the link is for an earlier excursion, or
the alert is over; 410 expired or used; 415 a body that is neither a form nor JSON; 503 the broker
did not take the acknowledgement (the link stays usable).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.core.acklink import Grant, LinkRefused, load_secret, verify
from vigil.core.sitetime import format_value, precision_of, site_zone
from vigil.core.topics import TopicError

from .actions import text_problem
from .context import Context, ctx_of
from .feed import BrokerUnavailable
from .pages import render

__all__ = ["LinkDesk", "UsedLinks", "install", "router"]

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

NOTE_MAX = 2000
_REFUSED_STATUS = {"malformed": 400, "altered": 403, "expired": 410}
_HEADINGS = {"malformed": "This is not an acknowledgement link", "altered": "This link is not valid",
             "expired": "This link has expired"}


class UsedLinks:
    """The nonces of the links used, each kept until its link expires: a link works once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS used_links (nonce TEXT PRIMARY KEY, key TEXT NOT NULL, "
                         "by TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)")

    def use(self, grant: Grant, at: float) -> Optional[tuple[str, float]]:
        """Mark ``grant``'s link used at ``at``: None when it was not used before, else (by, at) of that use."""
        with self._lock:
            self._db.execute("DELETE FROM used_links WHERE expires < ?", (at,))
            cur = self._db.execute("INSERT OR IGNORE INTO used_links VALUES (?, ?, ?, ?, ?)",
                                   (grant.nonce, grant.key, grant.to, at, grant.expires))
            if cur.rowcount == 1:
                return None
        return self.used(grant.nonce)

    def used(self, nonce: str) -> Optional[tuple[str, float]]:
        """(by, at) when the link of ``nonce`` was used."""
        with self._lock:
            row = self._db.execute("SELECT by, at FROM used_links WHERE nonce = ?", (nonce,)).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def forget(self, nonce: str) -> None:
        """The acknowledgement did not reach the broker: the link may be used again."""
        with self._lock:
            self._db.execute("DELETE FROM used_links WHERE nonce = ?", (nonce,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LinkDesk:
    """The site's link secret and the used links, kept on ``app.state.links``."""

    def __init__(self, data_dir: Path) -> None:
        self.secret = load_secret(data_dir)
        self.used = UsedLinks(Path(data_dir) / "dashboard-links.db")


def install(app: Any, data_dir: Path) -> LinkDesk:
    """Serve the link routes on ``app`` with the secret and used links of ``data_dir``."""
    desk = LinkDesk(data_dir)
    app.state.links = desk
    app.include_router(router)
    return desk


def _clock_text(ts: float, zone: dt.tzinfo, day: bool = False) -> str:
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M %Z" if day else "%H:%M %Z")


def _details(ctx: Context, alert: dict[str, Any], zone: dt.tzinfo) -> list[tuple[str, str]]:
    """The alert as the page lists it: (label, text)."""
    latest = ctx.live.latest.get(alert["series"]) or {}
    unit, digits = str(latest.get("unit") or ""), precision_of(latest.get("labels") or {})

    def value(v: Optional[float]) -> str:
        return "–" if v is None else f"{format_value(v, digits)} {unit}".strip()

    state = alert["state"]
    if state == "cleared":
        state = "cleared, not acknowledged"
    elif alert.get("acknowledged_by"):
        state += f", acknowledged by {alert['acknowledged_by']}"
    rows = [("Alert", alert["rule"]), ("Sensor", alert["series"]), ("State", state),
            ("Severity", alert["severity"]), ("Value", value(alert.get("value")))]
    if alert.get("peak") is not None:
        rows.append(("Worst", value(alert["peak"])))
    if latest.get("value") is not None:
        rows.append(("Now", value(latest["value"])))
    rows.append(("Since", _clock_text(alert["since"], zone, day=True)))
    if alert.get("ended") is not None:
        rows.append(("Cleared at", _clock_text(alert["ended"], zone, day=True)))
    if alert.get("message"):
        rows.append(("Message", alert["message"]))
    return rows


def _page(status: int, outcome: str, heading: str, text: str = "", rows: Optional[list[tuple[str, str]]] = None,
          form: bool = False, note: str = "") -> Response:
    return render("ack.html", status=status, page="ack", title=heading, outcome=outcome, heading=heading,
                  text=text, rows=rows or [], form=form, note=note, note_max=NOTE_MAX)


def _grant(request: Request, token: str) -> tuple[Optional[Grant], Optional[Response]]:
    desk: LinkDesk = request.app.state.links
    try:
        return verify(desk.secret, token, ctx_of(request).clock.now()), None
    except LinkRefused as exc:
        ctx_of(request).counters[f"ack_link_{exc.reason}"] += 1
        return None, _page(_REFUSED_STATUS.get(exc.reason, 400), exc.reason, _HEADINGS.get(exc.reason, str(exc)),
                           f"{exc}." if exc.reason != "expired" else
                           "Acknowledge it on the dashboard instead (you will need to log in).")


def _blocked(ctx: Context, grant: Grant, zone: dt.tzinfo) -> Optional[Response]:
    """Why this genuine link cannot acknowledge now (the page to answer), or None when it can."""
    alert = ctx.live.alerts.get(grant.key)
    if alert is None:
        return _page(404, "unknown", "No such alert now",
                     f"Vigil shows no alert {grant.key} at the moment: it may have been removed.")
    rows = _details(ctx, alert, zone)
    # (while an alert flaps, the engine keeps the episode people were told of: it judges those links itself)
    if abs(alert["since"] - grant.episode) > 0.001 and alert["state"] != "flapping":
        return _page(409, "stale", "This link is for an earlier alert",
                     "The alert cleared and began again since this link was sent; use the newest message, "
                     "or the dashboard.", rows)
    if alert.get("acknowledged_by"):
        at = alert.get("acknowledged_at")
        return _page(200, "acknowledged", f"Already acknowledged by {alert['acknowledged_by']}"
                     + (f" at {_clock_text(at, zone)}" if at else ""), "", rows)
    if alert["state"] not in ("firing", "flapping", "cleared", "pending"):
        return _page(409, "over", "This alert is over", "It ended without needing an acknowledgement.", rows)
    return None


def _used_page(by: str, at: float, zone: dt.tzinfo) -> Response:
    return _page(410, "used", "This link was already used",
                 f"{by} acknowledged with it at {_clock_text(at, zone, day=True)}. A link works once.")


async def _usable(request: Request, token: str) -> Union[tuple[Grant, dt.tzinfo], Response]:
    """The grant of a genuine, unused link whose alert can be acknowledged, with the site zone; or the page
    that refuses it."""
    ctx = ctx_of(request)
    grant, refused = _grant(request, token)
    if grant is None:
        assert refused is not None
        return refused
    zone = site_zone(ctx.settings.zone_name)
    used_links: UsedLinks = request.app.state.links.used
    used = await asyncio.to_thread(used_links.used, grant.nonce)
    if used:
        return _used_page(used[0], used[1], zone)
    blocked = _blocked(ctx, grant, zone)
    return blocked if blocked is not None else (grant, zone)


@router.get("/ack/{token}")
async def ack_page(request: Request, token: str) -> Response:
    """The alert of a genuine link, with the Acknowledge button and an optional note."""
    ctx = ctx_of(request)
    checked = await _usable(request, token)
    if isinstance(checked, Response):
        return checked
    grant, zone = checked
    alert = ctx.live.alerts[grant.key]
    return _page(200, "form", f"Acknowledge {alert['rule']}", f"As {grant.to}.", _details(ctx, alert, zone),
                 form=True)


def _note(request: Request, body: bytes) -> tuple[Optional[str], Optional[Response]]:
    """The optional note of a form, a JSON object or an empty body (ntfy's action); or the page refusing it."""
    if not body.strip():
        return None, None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
        if kind == "application/x-www-form-urlencoded":
            values = parse_qs(text, keep_blank_values=True, max_num_fields=8, errors="strict").get("note", [""])
            note: Any = values[0]
        elif kind == "application/json":
            data = json.loads(text)
            note = data.get("note") if isinstance(data, dict) else None
            if not isinstance(data, dict) or not isinstance(note, (str, type(None))):
                raise ValueError("expected a JSON object with an optional string \"note\"")
        else:
            return None, _page(415, "bad-body", "Send a form or nothing",
                               "POST the page's form, JSON {\"note\": \"...\"}, or an empty body.")
    except ValueError as exc:
        return None, _page(400, "bad-body", "The request could not be read", str(exc)[:200])
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        return None, _page(400, "bad-body", "The note is too long",
                           f"Write at most {NOTE_MAX} characters; this one has {len(note)}.")
    problem = text_problem(note)
    if problem:
        return None, _page(400, "bad-body", "The note cannot be recorded as written", problem[:1].upper() + problem[1:])
    return note or None, None


@router.post("/ack/{token}")
async def acknowledge_link(request: Request, token: str) -> Response:
    """Use the link: published on ``<root>/ack/<rule>/<series>`` once the broker has it; single use."""
    ctx = ctx_of(request)
    if (refused := _grant(request, token)[1]) is not None:
        return refused  # an altered or expired link: its body is not read
    note, bad = _note(request, await request.body())
    if bad is not None:
        return bad
    checked = await _usable(request, token)
    if isinstance(checked, Response):
        return checked
    grant, zone = checked
    used_links: UsedLinks = request.app.state.links.used
    try:
        topic = ctx.live.topics.ack(grant.rule, grant.series)
    except TopicError as exc:
        return _page(400, "malformed", "This link names no alert Vigil can acknowledge", str(exc))
    now = ctx.clock.now()
    first = await asyncio.to_thread(used_links.use, grant, now)
    if first is not None:  # another tap won the race
        return _used_page(first[0], first[1], zone)
    body = {"by": grant.to, "comment": "", "episode": grant.episode, "via": "link", "note": note, "at": now}
    try:
        await ctx.publisher.publish(topic, json.dumps(body, ensure_ascii=False).encode(), qos=1)
    except BrokerUnavailable as exc:
        await asyncio.to_thread(used_links.forget, grant.nonce)
        resp = _page(503, "unavailable", "Not acknowledged yet",
                     f"Vigil could not pass it on ({exc.reason}). Try again in a minute.", form=True, note=note or "")
        resp.headers["Retry-After"] = "5"
        return resp
    ctx.counters["acknowledged"] += 1
    ctx.counters["acknowledged_by_link"] += 1
    log.info("%s acknowledged %s by a link", grant.to, grant.key)
    alert = ctx.live.alerts.get(grant.key)
    return _page(200, "done", f"Acknowledged by {grant.to} at {_clock_text(now, zone)}",
                 "Reminders stop; everyone sees who took it." + (" Your note is recorded." if note else ""),
                 _details(ctx, alert, zone) if alert else [])
