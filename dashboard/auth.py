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
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Optional

from vigil.core.clock import Clock, SystemClock
from vigil.core.errors import VigilError

from .denylist import DenyList, DenyListFull
from .files import replace_file
from .passwords import generate_password, hash_password, verify_and_update
from .settings import DashboardSettings, UserEntry

__all__ = [
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "LoginLimiter",
    "Principal",
    "ReplayGuard",
    "client_address",
    "ensure_admin",
    "sign_request",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "vigil_session"
# A hash made once per process so that an unknown user name costs as much time as a known one.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))


class AuthError(VigilError):
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
    expires: Optional[float] = None

    def allows(self, role: str) -> bool:
        """Whether this caller may do what ``role`` may (admin may do everything)."""
        return self.role == role or self.role == "admin"

    def csrf_matches(self, token: str) -> bool:
        """Whether ``token`` is this session's CSRF token (compared in constant time)."""
        return self.csrf is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LoginLimiter:
    """At most ``attempts`` logins that were not right per ``window`` seconds for one key (an address, a user).

    An attempt is counted *before* its password is checked (``reserve``) and given back when it
    was right, so concurrent attempts cannot all pass the check while the hashes run.
    """

    def __init__(self, attempts: int, window: float, clock: Clock, max_keys: int = 100_000) -> None:
        self._attempts = attempts
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # Least recently counted first, so eviction takes expired and then the oldest keys.
        self._counts: OrderedDict[str, deque[float]] = OrderedDict()

    def _wait(self, key: str, now: float) -> Optional[float]:
        q = self._counts.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self._window:
            q.popleft()
        if not q:
            del self._counts[key]
            return None
        if len(q) < self._attempts:
            return None
        return max(0.1, q[0] + self._window - now)

    def retry_after(self, key: str) -> Optional[float]:
        """Seconds until ``key`` may try again, or None when it may try now."""
        with self._lock:
            return self._wait(key, self._clock.now())

    def reserve(self, keys: tuple[str, ...]) -> Optional[float]:
        """Count one attempt for every key, or none and return the seconds to wait when one is at its limit."""
        with self._lock:
            now = self._clock.now()
            waits = [w for w in (self._wait(k, now) for k in keys) if w is not None]
            if waits:
                return max(waits)
            for k in keys:
                self._counts.setdefault(k, deque()).append(now)
                self._counts.move_to_end(k)
            self._evict(now)
            return None

    def succeeded(self, user_key: str, *others: str) -> None:
        """The attempt was right: the user's count starts again; the others get their attempt back."""
        with self._lock:
            self._counts.pop(user_key, None)
            for k in others:
                q = self._counts.get(k)
                if q:
                    q.pop()
                    if not q:
                        del self._counts[k]

    def _evict(self, now: float) -> None:
        # Keys whose newest attempt is past the window count nothing; past the bound, the oldest go.
        # (Clearing everything at the bound let a flood of names reset every user's count.)
        while self._counts:
            key, q = next(iter(self._counts.items()))
            if q and q[-1] > now - self._window and len(self._counts) <= self._max_keys:
                break
            del self._counts[key]

    def __len__(self) -> int:
        return len(self._counts)


class ReplayGuard:
    """Remembers signatures seen within the tolerance window, so a captured request cannot be sent twice.

    Kept in ``denylist``, which outlives a restart when it has a file.
    """

    def __init__(self, tolerance: float, clock: Clock, denylist: Optional[DenyList] = None) -> None:
        self._tolerance = tolerance
        self._clock = clock
        self._seen = denylist if denylist is not None else DenyList(None, clock)

    def first_time(self, signature: str) -> bool:
        try:
            return self._seen.add("signature", signature, self._clock.now() + 2 * self._tolerance)
        except DenyListFull as exc:
            raise AuthError(429, "too many signed requests within the signature tolerance; send fewer, or "
                            "batch readings into one request", retry_after=exc.retry_after) from None


def client_address(peer: str, forwarded_for: list[str], trusted: list[IPv4Network | IPv6Network]) -> str:
    """The client's address: ``peer``, or when ``peer`` is a trusted proxy the right-most untrusted
    address of X-Forwarded-For (the left part of that header is whatever the client wrote).
    """
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    last = peer
    for hop in reversed(hops):
        if not _in(hop, trusted):
            try:
                return str(ip_address(hop))
            except ValueError:  # not an address: the proxy that passed it on is the client we know
                return last
        last = hop
    return last


def _in(address: str, networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks)


def sign_request(secret: str, timestamp: int, path_and_query: str, body: bytes) -> str:
    """The ``X-Vigil-Signature`` value: sha256=HMAC(secret, "<timestamp>\\n<path?query>\\n" + body)."""
    msg = f"{timestamp}\n{path_and_query}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


class Authenticator:
    """Checks passwords, session cookies, tokens and signatures against the dashboard settings."""

    def __init__(self, settings: DashboardSettings, clock: Optional[Clock] = None,
                 state_path: Optional[Path] = None) -> None:
        """``state_path``: the SQLite file that keeps logouts and seen signatures over a restart."""
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        secret = settings.session_secret.get_secret_value() if settings.session_secret else None
        self._key = (secret or secrets.token_urlsafe(32)).encode()
        self._users = {u.name: u for u in settings.users}
        self._upgrade_lock = threading.Lock()
        self.limiter = LoginLimiter(settings.login_attempts, settings.login_window, self.clock)
        self.denylist = DenyList(state_path, self.clock)
        self.replays = ReplayGuard(settings.signature_tolerance, self.clock, self.denylist)

    def close(self) -> None:
        self.denylist.close()

    def client_address(self, peer: str, forwarded_for: list[str]) -> str:
        """The address a login is counted against (X-Forwarded-For only from ``trusted_proxies``)."""
        return client_address(peer, forwarded_for, self.settings.trusted_proxies)

    # People.
    def login(self, name: str, password: str, client: str) -> str:
        """A session cookie value for ``name``; AuthError 401 on a bad password, 429 when rate-limited."""
        user_key, addr_key = f"user:{name}", f"addr:{client}"
        wait = self.limiter.reserve((addr_key, user_key))  # before the hash: concurrent tries count too
        if wait is not None:
            raise AuthError(429, "too many failed logins; try again later", retry_after=wait)
        user: Optional[UserEntry] = self._users.get(name)
        ok, newer = verify_and_update(password, user.password_hash if user else _DUMMY_HASH)
        if not ok or user is None:
            log.info("failed login for user %r from %s", name[:64], client)
            raise AuthError(401, "wrong user name or password")
        self.limiter.succeeded(user_key, addr_key)
        if newer is not None:
            self._upgrade(user, newer)
        log.info("user %r logged in from %s", name, client)
        payload = {"u": user.name, "r": user.role, "exp": self.clock.now() + self.settings.session_lifetime,
                   "c": secrets.token_urlsafe(18)}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def _upgrade(self, user: UserEntry, newer: str) -> None:
        """Keep ``newer`` (argon2id) instead of an older hash that just proved the password right."""
        with self._upgrade_lock:
            if self._users.get(user.name) is not user:
                return  # a concurrent login did it already
            path = user.hash_file
            if path is not None:
                try:
                    replace_file(path, newer + "\n")
                except OSError as exc:
                    log.warning("cannot write user %r's new password hash to %s: %s", user.name, path, exc)
                else:
                    log.info("user %r's password hash in %s is now argon2id", user.name, path)
            else:
                log.warning("user %r logged in with an older or weaker password hash from the configuration; until "
                            "a restart the dashboard uses an argon2id one; replace dashboard.users[].password_hash "
                            "with the output of 'vigil dashboard --hash-password'", user.name)
            self._users[user.name] = user.model_copy(update={"password_hash": newer})

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
        if self.denylist.denied("session", csrf):
            raise AuthError(401, "this session was logged out; log in again")
        return Principal(name, role, "session", csrf, exp)

    def logout(self, who: Principal) -> None:
        """End ``who``'s session on the server: its cookie is refused from now on, also after a restart."""
        if who.via != "session" or who.csrf is None:
            return
        try:
            self.denylist.add("session", who.csrf, who.expires or self.clock.now() + self.settings.session_lifetime)
        except DenyListFull as exc:
            raise AuthError(503, "too many sessions were logged out recently; try again later",
                            retry_after=exc.retry_after) from None
        log.info("user %r logged out", who.name)

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
    ``<data_dir>/dashboard-admin.hash`` (mode 0600, fsynced); later calls read the hash and return
    None. A login that replaces an older hash writes the new one to the same file.
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
        replace_file(path, stored + "\n", new_mode=0o600)
    admin = UserEntry(name="admin", password_hash=stored, role="admin").kept_in(path)
    users = [u for u in settings.users if u.name != "admin"] + [admin]
    return settings.model_copy(update={"users": users}), password
