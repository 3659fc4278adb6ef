"""Password hashes: argon2id through pwdlib; the older ``scrypt$...`` form still verifies.

New hashes are argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane), in the standard
``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`` form. Hashes that an older Vigil made,
``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>``, still log in, and the login that
proves the password gives back an argon2id hash to keep instead (``verify_and_update``).

Every hash that configuration accepts (``check_hash_format``) is one a login can verify within
the same memory budget: a hash that would need more is refused when the file is read, not at login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Optional, Union

import argon2
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

__all__ = ["check_hash_format", "generate_password", "hash_password", "verify_and_update", "verify_password"]

# OWASP's minimum for argon2id (Password Storage Cheat Sheet): m = 19 MiB, t = 2, p = 1.
ARGON2_MEMORY_KIB, ARGON2_TIME, ARGON2_LANES = 19 * 1024, 2, 1
# What one login may cost: scrypt's maxmem, and the largest argon2 memory and passes accepted.
MAX_MEMORY = 64 * 1024 * 1024
_MAX_ARGON2_TIME, _MAX_ARGON2_LANES = 16, 8
_REMAKE = "make a new one with 'vigil dashboard --hash-password'"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def scrypt_memory(log2_n: int, r: int, p: int) -> int:
    """Bytes that OpenSSL's scrypt checks against ``maxmem``: 128·r·p for B and 128·r·(N + 2) for V."""
    return 128 * r * p + 128 * r * ((1 << log2_n) + 2)


class LegacyScrypt:
    """The ``scrypt$...`` hashes of older versions, as a pwdlib hasher: verified, never made for users."""

    @classmethod
    def identify(cls, hash: Union[str, bytes]) -> bool:
        return (hash if isinstance(hash, str) else hash.decode("utf-8", "replace")).startswith("scrypt$")

    @staticmethod
    def parse(text: str) -> tuple[int, int, int, bytes, bytes]:
        """The parameters, salt and digest of a ``scrypt$...`` hash; ValueError with a sentence when it is not one."""
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError(f"this scrypt hash is not in the form scrypt$n$r$p$salt$hash; {_REMAKE}")
        try:
            log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, digest = _unb64(parts[4]), _unb64(parts[5])
        except ValueError:
            raise ValueError(f"the password hash is damaged; {_REMAKE}") from None
        if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
            raise ValueError(f"the scrypt hash has parameters out of range (log2 N 10-20, r 1-32, p 1-16); {_REMAKE}")
        need = scrypt_memory(log2_n, r, p)
        if need > MAX_MEMORY:
            raise ValueError(f"this scrypt hash (N=2^{log2_n}, r={r}, p={p}) needs {need / 2**20:.3f} MiB at every "
                             f"login, more than the {MAX_MEMORY >> 20} MiB a login may use; {_REMAKE}")
        return log2_n, r, p, salt, digest

    def hash(self, password: Union[str, bytes], *, salt: Optional[bytes] = None) -> str:
        """The form older versions wrote (N = 2^14, r = 8, p = 1); kept to test that such hashes still log in."""
        pw = password.encode() if isinstance(password, str) else password
        salt = salt if salt is not None else secrets.token_bytes(16)
        digest = hashlib.scrypt(pw, salt=salt, n=2**14, r=8, p=1, maxmem=MAX_MEMORY, dklen=32)
        return f"scrypt$14$8$1${_b64(salt)}${_b64(digest)}"

    def verify(self, password: Union[str, bytes], hash: Union[str, bytes]) -> bool:
        try:
            log2_n, r, p, salt, digest = self.parse(hash if isinstance(hash, str) else hash.decode())
        except (ValueError, UnicodeDecodeError):
            return False
        pw = password.encode() if isinstance(password, str) else password
        got = hashlib.scrypt(pw, salt=salt, n=2**log2_n, r=r, p=p, maxmem=MAX_MEMORY, dklen=len(digest))
        return hmac.compare_digest(got, digest)

    def check_needs_rehash(self, hash: Union[str, bytes]) -> bool:
        return True


_ARGON2 = Argon2Hasher(time_cost=ARGON2_TIME, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_LANES)
_HASHES = PasswordHash((_ARGON2, LegacyScrypt()))


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` with a fresh random salt."""
    return _HASHES.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (False for a hash configuration would refuse)."""
    try:
        check_hash_format(stored)  # never spend more than a login may on a hash that came another way
        return _HASHES.verify(password, stored)
    except (ValueError, UnknownHashError):
        return False


def verify_and_update(password: str, stored: str) -> tuple[bool, Optional[str]]:
    """Whether ``password`` matches, and when it does and ``stored`` is weaker than today's, a new hash to keep."""
    if not verify_password(password, stored):
        return False, None
    return True, (hash_password(password) if _weaker(stored) else None)


def _weaker(stored: str) -> bool:
    """scrypt, argon2i/d, or argon2id below OWASP's minimum (a stronger argon2id hash is left alone)."""
    if not Argon2Hasher.identify(stored):
        return True
    params = argon2.extract_parameters(stored)
    return (params.type is not argon2.Type.ID or params.memory_cost < ARGON2_MEMORY_KIB
            or params.time_cost < ARGON2_TIME)


def check_hash_format(text: str) -> None:
    """ValueError with a sentence unless ``text`` is a hash that a login can verify."""
    if LegacyScrypt.identify(text):
        LegacyScrypt.parse(text)
        return
    if not Argon2Hasher.identify(text):
        raise ValueError(f"expected a password hash ($argon2id$...), not a password; {_REMAKE}")
    try:
        params = argon2.extract_parameters(text)
        for part in text.split("$")[4:6]:
            _unb64(part)
    except (argon2.exceptions.InvalidHashError, ValueError):
        raise ValueError(f"the password hash is damaged or has no salt and digest; {_REMAKE}") from None
    if params.memory_cost < 8 * params.parallelism:
        raise ValueError(f"the password hash is damaged (argon2 needs m >= 8 x p); {_REMAKE}")
    if not (params.memory_cost * 1024 <= MAX_MEMORY and 1 <= params.time_cost <= _MAX_ARGON2_TIME
            and 1 <= params.parallelism <= _MAX_ARGON2_LANES):
        raise ValueError(f"this argon2 hash (m={params.memory_cost} KiB, t={params.time_cost}, "
                         f"p={params.parallelism}) costs more than a login may (at most {MAX_MEMORY >> 20} MiB, "
                         f"t {_MAX_ARGON2_TIME}, p {_MAX_ARGON2_LANES}); {_REMAKE}")


def generate_password() -> str:
    """A random password a person can type: 20 URL-safe characters."""
    return secrets.token_urlsafe(15)
