"""Who is asking: session cookies for people, bearer tokens and HMAC signatures for machines.

Exceptions::

    AuthError            the request is not authenticated or not allowed (``status`` 401/403/429)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from alerting.clock import Clock, SystemClock

from .passwords import generate_password, hash_password, verify_password
from .settings import DashboardSettings, UserEntry

__all__ = [
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "LoginLimiter",
    "Principal",
    "ReplayGuard",
    "ensure_admin",
    "sign_request",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "vigil_session"
# A hash made once per process so that an unknown user name costs as much time as a known one.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))


class AuthError(Exception):
    """Not authenticated (401), not allowed (403) or too many attempts (429)."""

    def __init__(self, status: int, message: str, retry_after: Optional[float] = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller; ``csrf`` is set for cookie sessions, which must echo it on changes."""

    name: str
    role: str
    via: str
    csrf: Optional[str] = None

    def allows(self, role: str) -> bool:
        """Whether this caller may do what ``role`` may (admin may do everything)."""
        return self.role == role or self.role == "admin"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LoginLimiter:
    """At most ``attempts`` failed logins per ``window`` seconds for one key (client address, user)."""

    def __init__(self, attempts: int, window: float, clock: Clock) -> None:
        self._attempts = attempts
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> Optional[float]:
        """Seconds until ``key`` may try again, or None when it may try now."""
        now = self._clock.now()
        q = self._failures.get(key)
        if not q:
            return None
        while q and q[0] <= now - self._window:
            q.popleft()
        if len(q) < self._attempts:
            return None
        return max(0.1, q[0] + self._window - now)

    def failed(self, key: str) -> None:
        if len(self._failures) > 100_000:  # a flood of distinct keys must not grow memory forever
            self._failures.clear()
        self._failures.setdefault(key, deque()).append(self._clock.now())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class ReplayGuard:
    """Remembers signatures seen within the tolerance window, so a captured request cannot be sent twice."""

    def __init__(self, tolerance: float, clock: Clock, limit: int = 200_000) -> None:
        self._tolerance = tolerance
        self._clock = clock
        self._limit = limit
        self._seen: dict[str, float] = {}

    def first_time(self, signature: str) -> bool:
        now = self._clock.now()
        if len(self._seen) >= self._limit:
            self._seen = {s: exp for s, exp in self._seen.items() if exp > now}
        exp = self._seen.get(signature)
        if exp is not None and exp > now:
            return False
        self._seen[signature] = now + 2 * self._tolerance
        return True


def sign_request(secret: str, timestamp: int, path_and_query: str, body: bytes) -> str:
    """The ``X-Vigil-Signature`` value: sha256=HMAC(secret, "<timestamp>\\n<path?query>\\n" + body)."""
    msg = f"{timestamp}\n{path_and_query}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


class Authenticator:
    """Checks passwords, session cookies, tokens and signatures against the dashboard settings."""

    def __init__(self, settings: DashboardSettings, clock: Optional[Clock] = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        secret = settings.session_secret.get_secret_value() if settings.session_secret else None
        self._key = (secret or secrets.token_urlsafe(32)).encode()
        self._users = {u.name: u for u in settings.users}
        self.limiter = LoginLimiter(settings.login_attempts, settings.login_window, self.clock)
        self.replays = ReplayGuard(settings.signature_tolerance, self.clock)

    # People.
    def login(self, name: str, password: str, client: str) -> str:
        """A session cookie value for ``name``; AuthError 401 on a bad password, 429 when rate-limited."""
        for key in (f"addr:{client}", f"user:{name}"):
            wait = self.limiter.retry_after(key)
            if wait is not None:
                raise AuthError(429, "too many failed logins; try again later", retry_after=wait)
        user: Optional[UserEntry] = self._users.get(name)
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH) and user is not None
        if not ok or user is None:
            self.limiter.failed(f"addr:{client}")
            self.limiter.failed(f"user:{name}")
            log.info("failed login for user %r from %s", name[:64], client)
            raise AuthError(401, "wrong user name or password")
        self.limiter.succeeded(f"user:{name}")
        log.info("user %r logged in from %s", name, client)
        payload = {"u": user.name, "r": user.role, "exp": self.clock.now() + self.settings.session_lifetime,
                   "c": secrets.token_urlsafe(18)}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def session(self, cookie: str) -> Principal:
        """The person a session cookie belongs to; AuthError 401 when it is forged, expired or revoked."""
        body, _, sig = cookie.partition(".")
        want = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not sig or not hmac.compare_digest(sig, want):
            raise AuthError(401, "not logged in")
        try:
            data = json.loads(_unb64(body))
            name, role, exp, csrf = str(data["u"]), str(data["r"]), float(data["exp"]), str(data["c"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(401, "not logged in") from exc
        user = self._users.get(name)
        if exp < self.clock.now():
            raise AuthError(401, "the session has expired; log in again")
        if user is None or user.role != role:
            raise AuthError(401, "this account has changed; log in again")
        return Principal(name, role, "session", csrf)

    # Machines.
    def token(self, value: str) -> Principal:
        given = value.encode()
        for t in self.settings.tokens:
            if hmac.compare_digest(given, t.token.get_secret_value().encode()):
                return Principal(t.name, t.role, "token")
        raise AuthError(401, "unknown API token")

    def signature(self, key_id: str, timestamp: str, signature: str, path_and_query: str,
                  body: bytes) -> Principal:
        """Check an HMAC-signed request; replays and stale timestamps are refused (401)."""
        key = next((k for k in self.settings.hmac_keys if k.id == key_id), None)
        if key is None:
            raise AuthError(401, "unknown signing key in X-Vigil-Key")
        try:
            ts = int(timestamp)
        except ValueError:
            raise AuthError(401, "X-Vigil-Timestamp must be whole epoch seconds") from None
        if abs(self.clock.now() - ts) > self.settings.signature_tolerance:
            raise AuthError(401, "X-Vigil-Timestamp is too far from the server's time (clock skew or replay)")
        want = sign_request(key.secret.get_secret_value(), ts, path_and_query, body)
        if not hmac.compare_digest(signature.strip().encode(), want.encode()):
            raise AuthError(401, "bad signature")
        if not self.replays.first_time(want):
            raise AuthError(401, "this signed request was already received (replay refused)")
        return Principal(key.id, "ingest", "hmac")


def ensure_admin(settings: DashboardSettings, data_dir: str | Path) -> tuple[DashboardSettings, Optional[str]]:
    """Settings with at least one admin; makes one with a random password when none is configured.

    The first time, the password is returned (to print once) and only its hash is written to
    ``<data_dir>/dashboard-admin.hash`` (mode 0600); later calls read the hash and return None.
    """
    if any(u.role == "admin" for u in settings.users):
        return settings, None
    path = Path(data_dir) / "dashboard-admin.hash"
    password: Optional[str] = None
    if path.exists():
        stored = path.read_text("utf-8").strip()
    else:
        password = generate_password()
        stored = hash_password(password)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{int(time.time() * 1000)}")
        tmp.write_text(stored + "\n", "utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)
    admin = UserEntry(name="admin", password_hash=stored, role="admin")
    users = [u for u in settings.users if u.name != "admin"] + [admin]
    return settings.model_copy(update={"users": users}), password
