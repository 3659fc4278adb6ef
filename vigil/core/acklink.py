"""Signed acknowledgement links: one tap on a phone acknowledges one excursion, once, before it expires.

The rule engine's delivery signs a link for each person it tells (``sign``); the dashboard, which needs
no login for this one action, checks it (``verify``) and keeps the nonce of every link used until it
expires, so a link works once. A token is ``<payload>.<signature>``, both base64url: the payload is JSON
with the alert's key (``k``, ``rule/series``), the excursion it belongs to (``e``: when it began, so a
link from last week's excursion cannot acknowledge today's), who it was sent to (``t``: a receiver or
the person on call), when it expires (``x``, epoch seconds) and a nonce (``n``); the signature is an
HMAC-SHA256 over the payload with the site's link secret (``load_secret``), cut to 128 bits.

Refusals (``LinkRefused.reason``): ``malformed`` (not a token), ``altered`` (the signature does not
match: changed, or signed with another secret), ``expired``. Single use is the dashboard's (it keeps
the nonces). Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vigil.core.errors import VigilError

__all__ = ["SECRET_ENV", "SECRET_FILE", "Grant", "LinkRefused", "load_secret", "sign", "verify"]

SECRET_ENV = "VIGIL_LINK_SECRET"
SECRET_FILE = "link-secret"
_CONTEXT = b"vigil-ack-v1."
_MAX_TOKEN = 2048


class LinkRefused(VigilError):
    """An acknowledgement link that cannot be used: ``reason`` is malformed, altered, expired or used."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid link allows: acknowledge alert ``key``'s excursion ``episode`` as ``to``."""

    key: str
    episode: float
    to: str
    expires: float
    nonce: str

    @property
    def rule(self) -> str:
        return self.key.partition("/")[0]

    @property
    def series(self) -> str:
        return self.key.partition("/")[2]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()[:16])


def sign(secret: bytes, key: str, episode: float, to: str, expires: float, nonce: Optional[str] = None) -> str:
    """A token for acknowledging ``key``'s excursion that began at ``episode``, sent to ``to``."""
    body = {"k": key, "e": round(float(episode), 6), "t": to, "x": math.ceil(expires),
            "n": nonce or secrets.token_urlsafe(9)}
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: bytes, token: str, now: float) -> Grant:
    """The grant of a genuine, unexpired token; LinkRefused otherwise."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise LinkRefused("malformed", "this is not an acknowledgement link")
    payload, signature = token.split(".")
    try:
        payload.encode("ascii")
        signature.encode("ascii")
    except UnicodeEncodeError:
        raise LinkRefused("malformed", "this is not an acknowledgement link") from None
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise LinkRefused("altered", "this link was changed, or was not made by this Vigil")
    try:
        body = json.loads(_unb64(payload))
        grant = Grant(str(body["k"]), float(body["e"]), str(body["t"]), float(body["x"]), str(body["n"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise LinkRefused("malformed", "this is not an acknowledgement link") from None
    if "/" not in grant.key or not math.isfinite(grant.episode):
        raise LinkRefused("malformed", "this is not an acknowledgement link")
    if now >= grant.expires:
        raise LinkRefused("expired", "this link has expired; acknowledge on the dashboard instead")
    return grant


def load_secret(data_dir: Path | str, env: Optional[Mapping[str, str]] = None) -> bytes:
    """The site's link secret: ``$VIGIL_LINK_SECRET`` (16 characters or more), else ``<data_dir>/link-secret``,
    made (random, mode 0600) on first use. The rule engine and the dashboard must see the same one: with
    ``vigil up`` they share the data directory; on separate machines set the variable on both."""
    value = (os.environ if env is None else env).get(SECRET_ENV, "")
    if value:
        if len(value) < 16:
            raise ValueError(f"{SECRET_ENV} must be 16 characters or more")
        return value.encode()
    path = Path(data_dir) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(fresh + "\n")
    return bytes.fromhex(fresh)
