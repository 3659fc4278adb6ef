"""The login limiter's bound, the trusted-proxy address, the deny list's bound, and the CSRF comparison."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from dashboard.auth import AuthError, LoginLimiter, ReplayGuard, client_address
from dashboard.denylist import DenyList, DenyListFull
from tests.support.dashboard_app import NOW, Harness
from vigil.app.config import ConfigError, load_config
from vigil.core.clock import ManualClock


def test_a_flood_of_names_does_not_reset_a_locked_user() -> None:
    clock = ManualClock(NOW)
    limiter = LoginLimiter(5, 60, clock)
    for i in range(99_990):  # old attempts, expired by the time of the flood
        limiter.reserve((f"user:old{i}",))
    clock.advance(100)
    for _ in range(5):
        assert limiter.reserve(("user:admin",)) is None
    assert limiter.retry_after("user:admin") is not None
    for i in range(20):  # past 100,000 keys: the old limiter forgot every count here
        limiter.reserve((f"user:flood{i}",))
    assert limiter.retry_after("user:admin") is not None, "admin's lock must survive the flood"
    assert len(limiter) == 21, "only the expired keys were dropped"


def test_past_the_bound_the_oldest_keys_go_first() -> None:
    clock = ManualClock(NOW)
    limiter = LoginLimiter(2, 600, clock, max_keys=100)
    limiter.reserve(("user:first",))
    for i in range(99):
        limiter.reserve((f"user:k{i}",))
    for _ in range(2):
        limiter.reserve(("user:admin",))
    assert len(limiter) == 100 and limiter.retry_after("user:admin") is not None
    assert limiter.reserve(("user:first",)) is None, "the oldest key was dropped, not the newest"


def test_a_right_password_gives_the_address_its_attempt_back() -> None:
    limiter = LoginLimiter(2, 60, ManualClock(NOW))
    for _ in range(5):
        assert limiter.reserve(("addr:a", "user:u")) is None
        limiter.succeeded("user:u", "addr:a")
    assert limiter.retry_after("addr:a") is None and len(limiter) == 0


TRUSTED = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("192.0.2.7", ["203.0.113.1"], "192.0.2.7"),  # not a proxy: the header is the caller's own words
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["203.0.113.1"], "203.0.113.1"),
    ("127.0.0.1", ["1.2.3.4, 203.0.113.1"], "203.0.113.1"),  # the client wrote 1.2.3.4
    ("127.0.0.1", ["203.0.113.1, 10.1.2.3"], "203.0.113.1"),  # through two proxies of ours
    ("127.0.0.1", ["1.2.3.4", "203.0.113.1"], "203.0.113.1"),  # the header given twice
    ("::ffff:127.0.0.1", ["203.0.113.1"], "203.0.113.1"),
    ("::1", ["2001:db8::1"], "2001:db8::1"),
    ("127.0.0.1", ["not-an-address"], "127.0.0.1"),
    ("127.0.0.1", ["10.9.9.9"], "10.9.9.9"),  # only proxies: the left-most one
])
def test_the_client_address_behind_trusted_proxies(peer: str, headers: list[str], expected: str) -> None:
    assert client_address(peer, headers, TRUSTED) == expected
    assert client_address(peer, headers, []) == peer


def test_a_bad_trusted_proxy_is_an_error_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "vigil.yaml"
    f.write_text("dashboard:\n  trusted_proxies: [127.0.0.1/32, localhost]\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert f"{f}:2: dashboard.trusted_proxies" in str(err.value) and "'localhost' is not an IP address" in \
        str(err.value)
    f.write_text("dashboard:\n  trusted_proxies: [127.0.0.1, \"::1\", 10.0.0.0/8]\n")
    assert [str(n) for n in load_config(f).dashboard.trusted_proxies] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]


def test_the_deny_list_is_bounded_and_kept(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    path = tmp_path / "auth.db"
    deny = DenyList(path, clock, limit=3)
    for i in range(3):
        assert deny.add("signature", f"s{i}", NOW + 10)
    assert not deny.add("signature", "s0", NOW + 10)
    with pytest.raises(DenyListFull) as err:
        deny.add("signature", "s3", NOW + 10)
    assert err.value.retry_after == 10
    guard = ReplayGuard(5, clock, deny)
    with pytest.raises(AuthError) as refused:
        guard.first_time("s4")
    assert refused.value.status == 429
    deny.close()
    again = DenyList(path, clock, limit=3)
    assert again.denied("signature", "s1") and not again.add("signature", "s2", NOW + 10)
    clock.advance(11)
    assert not again.denied("signature", "s1") and again.add("signature", "s3", NOW + 30)
    again.close()
    assert len(DenyList(path, clock)) == 1, "expired entries are dropped at start"


async def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_crash(harness: Harness) -> None:
    await harness.login()
    for token in (b"wrong", "é".encode() * 24, b"\xff\xfe"):
        r = await harness.client.post("/api/v1/silences", json={"matchers": {"device": "d"}},
                                      headers={"X-CSRF-Token": token})
        assert r.status_code == 403, token
    assert harness.publisher.sent == []
