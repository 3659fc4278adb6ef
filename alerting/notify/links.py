"""Acknowledgement links in messages: one signed link per alert and receiver, and ntfy's buttons for it.

A link is ``<dashboard public URL>/ack/<token>``, the token signed with :func:`vigil.core.acklink.sign` for the
alert's key, its excursion (``Transition.since``) and the receiver the message goes to (the person's
receiver when a schedule named them), valid for ``LINK_LIFETIME``. The dashboard checks it and acknowledges.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional
from urllib.parse import quote

from vigil.core import acklink

from .message import ACTION, Item

__all__ = ["LINK_LIFETIME", "ack_links", "ntfy_params"]

LINK_LIFETIME = 24 * 3600.0


def ack_links(items: Iterable[Item], receiver: str, now: float, base: Optional[str],
              secret: Optional[bytes]) -> dict[str, str]:
    """A link per alert among ``items`` that asks ``receiver`` for action; none without ``base`` (``.../ack/``)."""
    if base is None or secret is None:
        return {}
    out: dict[str, str] = {}
    for item in items:
        t = item.transition
        if item.kind in ACTION and t.key not in out:
            out[t.key] = base + acklink.sign(secret, t.key, t.since, receiver, now + LINK_LIFETIME)
    return out


def ntfy_params(link: str) -> str:
    """ntfy's action buttons (acknowledge by POST, open the page) and click URL for one link, as URL parameters
    for apprise's ntfy plugin, which sends them as the X-Actions and X-Click headers."""
    actions = f"http, Acknowledge, {link}, method=POST, clear=true; view, Open, {link}"
    return f"actions={quote(actions, safe='')}&click={quote(link, safe='')}"
