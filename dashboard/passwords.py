"""Password hashes: scrypt from the standard library, in a self-describing text form.

``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>``: the parameters travel with the hash,
so stronger ones can be chosen later without breaking the hashes already in vigil.yaml.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["check_hash_format", "generate_password", "hash_password", "verify_password"]

_LOG2_N, _R, _P = 14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The scrypt hash of ``password`` with a fresh random salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**_LOG2_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(text: str) -> tuple[int, int, int, bytes, bytes]:
    """The parts of a stored hash; ValueError with a sentence when it is not one."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected a hash made by 'vigil dashboard --hash-password' (scrypt$...)")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise ValueError("the password hash is damaged; make it again with 'vigil dashboard --hash-password'") \
            from exc
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        raise ValueError("the password hash has parameters out of range")
    return log2_n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time in the digest comparison)."""
    try:
        log2_n, r, p, salt, digest = check_hash_format(stored)
    except ValueError:
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest))
    return hmac.compare_digest(got, digest)


def generate_password() -> str:
    """A random password a person can type: 20 URL-safe characters."""
    return secrets.token_urlsafe(15)
