"""Excursions of a unit, rebuilt from the ledger's rows (fired, cleared, resolved, told, acked, note).

A ``fired`` row opens an excursion of its key (``rule/series``); ``cleared`` and ``resolved`` end it (the
latest ``peak`` wins); a ``told`` row belongs to the latest excursion begun by its time; an ``acked`` row to the one
whose ``since`` is its ``episode`` (else the latest); a ``note`` to the latest excursion of its key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from alerting import ledger
from vigil.core.sqldb import Connection

from .ledgerdb import has_ledger, open_ledger_readonly
from .model import Excursion

__all__ = ["excursions_of", "has_ledger", "open_ledger_readonly", "series_of_key"]

_KINDS = ("fired", "cleared", "resolved", "told", "acked", "note")


def series_of_key(key: str) -> str:
    """``rule/device/sensor/metric`` -> ``device/sensor/metric`` (a rule name holds no slash)."""
    return key.split("/", 1)[1] if "/" in key else ""


def _num(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _or(value: Optional[float], default: Any) -> Any:
    return default if value is None else value


def _text(value: Any, limit: int = 2000) -> str:
    return str(value)[:limit] if value is not None else ""


def excursions_of(conn: Connection, units: Iterable[str], upto: int) -> dict[str, list[Excursion]]:
    """Every excursion of each unit (by series) in the ledger up to row ``upto``, oldest first."""
    wanted = set(units)
    out: dict[str, list[Excursion]] = {u: [] for u in wanted}
    if not has_ledger(conn):
        return out
    keys = [k for (k,) in conn.execute("SELECT DISTINCT key FROM ledger WHERE kind = 'fired' AND seq <= ?", (upto,))
            if series_of_key(str(k)) in wanted]
    if not keys:
        return out
    by_key: dict[str, list[Excursion]] = {}
    for e in ledger.entries(conn, keys=keys, kinds=_KINDS, upto=upto):
        _take(by_key, e)
    for key, found in by_key.items():
        out[series_of_key(key)].extend(found)
    for found in out.values():
        found.sort(key=lambda x: (x.since, x.fired_at))
    return out


def _take(by_key: dict[str, list[Excursion]], e: ledger.Entry) -> None:
    b = e.body
    found = by_key.setdefault(e.key, [])
    at = _or(_num(b.get("at")), e.at)
    if e.kind == "fired":
        since = _or(_num(b.get("since")), at)
        if found and found[-1].since == since and found[-1].ended is None:
            current = found[-1]  # the same excursion fired again (a restart): keep one
        else:
            rule, _, series = e.key.partition("/")
            current = Excursion(rule=str(b.get("rule") or rule), series=str(b.get("series") or series),
                                since=since, fired_at=at)
            found.append(current)
        current.value = _num(b.get("value"))
        current.peak = _or(_num(b.get("peak")), current.value)
        current.severity = _text(b.get("severity"), 40)
        current.message = _text(b.get("message"), 500)
        current.unit = _text(b.get("unit"), 20)
        current.latched = bool(b.get("latched"))
        current.seqs.append(e.seq)
        return
    if not found:
        return  # a row before any fired row of its key: nothing to attach it to
    current = found[-1]
    if e.kind == "acked":
        episode = _num(b.get("episode"))
        if episode is not None:
            current = next((x for x in reversed(found) if x.since == episode), current)
        current.acks.append({"by": _text(b.get("by"), 64), "via": _text(b.get("via"), 20),
                             "comment": _text(b.get("comment"), 500), "at": at})
    elif e.kind in ("cleared", "resolved"):
        since = _num(b.get("since"))
        if since is not None:
            current = next((x for x in reversed(found) if x.since == since), current)
        if e.kind == "cleared" or current.ended is None:
            ended = _num(b.get("ended")) if e.kind == "resolved" else None
            current.ended = ended if ended is not None else at
        if e.kind == "resolved":
            current.resolved_at = at
        peak = _num(b.get("peak"))
        if peak is not None:
            current.peak = peak
    elif e.kind == "told":
        # the excursion that had begun when the message went out (the dispatcher may write after a new one)
        current = next((x for x in reversed(found) if x.since <= at), current)
        current.told.append({"receiver": _text(b.get("receiver"), 100), "kind": _text(b.get("kind"), 20), "at": at})
    elif e.kind == "note":
        if any(n.get("id") == b.get("id") for n in current.notes if b.get("id")):
            return
        current.notes.append({"id": _text(b.get("id"), 64), "by": _text(b.get("by"), 64),
                              "text": _text(b.get("text")), "at": at})
    current.seqs.append(e.seq)
