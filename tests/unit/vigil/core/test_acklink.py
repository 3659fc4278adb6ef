"""vigil.core.acklink: a token grants what it was signed for, and nothing once changed, expired or foreign."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from vigil.core.acklink import Grant, LinkRefused, load_secret, sign, verify

SECRET = b"s" * 32
NOW = 1_700_000_000.0


def refusal(token: object, secret: bytes = SECRET, now: float = NOW) -> str:
    with pytest.raises(LinkRefused) as info:
        verify(secret, token, now)  # type: ignore[arg-type]
    return info.value.reason


def test_a_signed_token_grants_its_alert_excursion_person_and_expiry() -> None:
    token = sign(SECRET, "warm/freezer-1/t0/temperature", 1699999000.123456, "ana", NOW + 3600, nonce="n1")
    grant = verify(SECRET, token, NOW)
    assert grant == Grant("warm/freezer-1/t0/temperature", 1699999000.123456, "ana", NOW + 3600, "n1")
    assert (grant.rule, grant.series) == ("warm", "freezer-1/t0/temperature")
    assert len(token) < 300  # fits in a URL an SMS or a push carries


def test_each_token_has_its_own_nonce() -> None:
    a = verify(SECRET, sign(SECRET, "r/s", 1.0, "ana", NOW + 60), NOW)
    b = verify(SECRET, sign(SECRET, "r/s", 1.0, "ana", NOW + 60), NOW)
    assert a.nonce and b.nonce and a.nonce != b.nonce


def test_an_expired_token_is_refused_at_its_expiry() -> None:
    token = sign(SECRET, "r/s", 1.0, "ana", NOW + 60)
    assert verify(SECRET, token, NOW + 59.9).to == "ana"
    assert refusal(token, now=NOW + 60) == "expired"


def test_a_changed_payload_or_signature_or_another_secret_is_altered() -> None:
    token = sign(SECRET, "r/s", 1.0, "ana", NOW + 60)
    payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["t"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert refusal(f"{forged}.{signature}") == "altered"
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert refusal(f"{payload}.{flipped}") == "altered"
    assert refusal(token, secret=b"t" * 32) == "altered"


@pytest.mark.parametrize("token", ["", "nodot", "a.b.c", "é.é", "x" * 3000 + ".y", 42, None, "\x00.\x00"])
def test_what_is_not_a_token_is_malformed_or_altered(token: object) -> None:
    assert refusal(token) in ("malformed", "altered")


def test_a_validly_signed_payload_that_is_not_a_grant_is_malformed() -> None:
    # Signed with the right secret (as a leaked secret or a bug would), but not a grant's fields.
    from vigil.core.acklink import _b64, _signature

    for body in (b"[]", b'{"k": "noslash", "e": 1, "t": "a", "x": 9e9, "n": "n"}',
                 b'{"k": "r/s", "e": "NaN", "t": "a", "x": 9e9, "n": "n"}', b"\xff"):
        payload = _b64(body)
        assert refusal(f"{payload}.{_signature(SECRET, payload)}") == "malformed"


def test_the_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    first = load_secret(tmp_path, env={})
    assert len(first) == 32 and load_secret(tmp_path, env={}) == first
    assert stat.S_IMODE(os.stat(tmp_path / "link-secret").st_mode) == 0o600
    assert load_secret(tmp_path, env={"VIGIL_LINK_SECRET": "x" * 16}) == b"x" * 16
    with pytest.raises(ValueError, match="16 characters"):
        load_secret(tmp_path, env={"VIGIL_LINK_SECRET": "short"})
