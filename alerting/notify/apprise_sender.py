"""The real Sender: apprise, which reaches about a hundred services from one URL each."""

from __future__ import annotations

import copy
import functools
import logging
import re
from typing import Any, Optional
from urllib.parse import urlsplit

import apprise
from apprise.plugins import url_to_dict
from apprise.utils.parse import parse_urls

from alerting.transition import Severity

from .config import mask_apprise_url
from .sender import SendResult

__all__ = ["AppriseSender"]

log = logging.getLogger(__name__)

_TYPES = {
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.INFO: apprise.NotifyType.INFO,
}


def _secret_parts(url: str) -> list[str]:
    """Pieces of a URL that may be tokens (everything but the scheme and host), longest first."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return [url]
    pieces = re.split(r"[/:@?&=]+", url.partition("://")[2])
    return sorted({p for p in pieces if len(p) >= 4 and p != host and not p.isdigit()}, key=len, reverse=True)


def scrub(text: str, urls: list[str]) -> str:
    """``text`` with every possibly secret piece of ``urls`` replaced by ``***``."""
    for url in urls:
        for piece in _secret_parts(url):
            text = text.replace(piece, "***")
    return text


@functools.lru_cache(maxsize=512)
def _parsed(url: str) -> Optional[tuple[dict[str, Any], ...]]:
    """apprise's reading of one configured URL (a string may hold several, as ``Apprise.add`` takes them), or
    None if apprise does not understand it. Kept: parsing is most of the cost of a plugin object (about 190 of
    250 µs); the objects are made anew from a copy for every message, so no throttle or state of apprise's
    carries from one message to the next."""
    out = []
    for one in parse_urls(url):  # type: ignore[no-untyped-call]
        # secure_logging as apprise's default asset has it: its log lines hide the secrets
        tokens = url_to_dict(one, secure_logging=True)  # type: ignore[no-untyped-call]
        if tokens is None:
            return None
        out.append(tokens)
    return tuple(out) or None


class AppriseSender:
    """Sends through apprise's ``async_notify``; errors come back as text without secrets.

    Apprise runs the HTTP calls on its own process-wide thread pools, which outlive a call.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = timeout

    async def send(
        self, urls: list[str], title: str, body: str, *, severity: Severity, resolved: bool = False
    ) -> SendResult:
        ap = apprise.Apprise()
        for url in urls:
            parsed = _parsed(url)
            if parsed is None or not ap.add(copy.deepcopy(list(parsed))):
                return SendResult(False, f"apprise does not understand the URL {mask_apprise_url(url)}")
        notify_type = apprise.NotifyType.SUCCESS if resolved else _TYPES[severity]
        try:
            result = await ap.async_notify(
                body=body, title=title, notify_type=notify_type, timeout=self._timeout
            )
        except Exception as exc:  # apprise raises little, but a plugin bug must not kill delivery
            return SendResult(False, scrub(f"apprise failed: {exc!r}", urls))
        if result:
            return SendResult(True)
        problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
        detail = "; ".join(dict.fromkeys(problems)) or f"apprise reported {result.status.name}"
        return SendResult(False, scrub(detail[:500], urls))
