"""Password hashes: argon2id through pwdlib, older scrypt hashes still log in, and nothing login cannot verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dashboard.passwords import MAX_MEMORY, check_hash_format, hash_password, verify_and_update, verify_password
from tests.support.dashboard_app import PW, scrypt_hash
from vigil.app.config import ConfigError, load_config


def test_new_hashes_are_argon2id_at_owasps_minimum() -> None:
    a, b = hash_password(PW), hash_password(PW)
    assert a.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and a != b
    assert verify_password(PW, a) and not verify_password(PW + "!", a)
    check_hash_format(a)
    assert verify_and_update(PW, a) == (True, None), "today's hash is kept as it is"


def test_a_scrypt_hash_from_before_still_logs_in_and_is_replaced_by_argon2id() -> None:
    old = scrypt_hash(PW)
    check_hash_format(old)
    assert verify_password(PW, old) and not verify_password("wrong", old)
    ok, newer = verify_and_update(PW, old)
    assert ok and newer is not None and newer.startswith("$argon2id$") and verify_password(PW, newer)
    assert verify_and_update("wrong", old) == (False, None)


def test_a_weaker_argon2_hash_is_replaced_and_a_stronger_one_kept() -> None:
    import argon2

    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)
    strong = argon2.PasswordHasher(time_cost=3, memory_cost=32768, parallelism=1).hash(PW)
    assert verify_and_update(PW, weak)[1] is not None
    assert verify_and_update(PW, strong) == (True, None)


def test_a_hash_login_cannot_verify_is_refused_in_the_config_with_its_line(tmp_path: Path) -> None:
    # N = 2^16 passed validation but needs just over the 64 MiB a login may use: the user got
    # "ValueError: memory limit exceeded" answered as 422 at every login.
    f = tmp_path / "vigil.yaml"
    f.write_text(f"dashboard:\n  users:\n    - name: ops\n      password_hash: '{scrypt_hash(PW, 16)}'\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = str(err.value)
    assert f"{f}:4: dashboard.users[0].password_hash:" in text
    assert "N=2^16" in text and "64 MiB" in text and "--hash-password" in text


@pytest.mark.parametrize(("log2_n", "r", "p"), [(16, 8, 1), (15, 16, 1), (14, 32, 1), (19, 1, 1), (20, 1, 1),
                                                (18, 2, 16), (16, 8, 16), (17, 4, 1)])
def test_every_scrypt_hash_refused_is_one_login_could_not_run(log2_n: int, r: int, p: int) -> None:
    with pytest.raises(ValueError, match="more than the 64 MiB"):
        check_hash_format(f"scrypt${log2_n}${r}${p}$c2FsdA$ZGlnZXN0")
    with pytest.raises(ValueError, match="memory limit exceeded"):  # what login's maxmem says (fails at once)
        hashlib.scrypt(b"x", salt=b"s", n=2**log2_n, r=r, p=p, maxmem=MAX_MEMORY, dklen=32)


@pytest.mark.parametrize(("log2_n", "r", "p"), [(16, 7, 1), (15, 15, 1), (14, 31, 1), (10, 1, 16)])
def test_every_scrypt_hash_accepted_logs_in(log2_n: int, r: int, p: int) -> None:
    # The largest accepted just below the limit, for each N: the config's check and login agree.
    stored = scrypt_hash(PW, log2_n, r, p)
    check_hash_format(stored)
    assert verify_password(PW, stored)


@pytest.mark.parametrize(("text", "says"), [
    ("hunter2", "not a password"),
    ("scrypt$14$8$1$!!$!!", "damaged"),
    ("scrypt$9$8$1$c2FsdA$ZGlnZXN0", "out of range"),
    ("$argon2id$v=19$m=19456,t=2,p=1", "damaged"),
    ("$argon2id$v=19$m=19456,t=2,p=1$!!$!!", "damaged"),
    ("$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0", "costs more than a login may"),
    ("$argon2id$v=19$m=19456,t=100,p=1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0", "costs more than a login may"),
    ("$argon2id$v=19$m=8,t=2,p=4$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0", "damaged"),
])
def test_hashes_of_no_use_are_refused_with_what_to_do(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        check_hash_format(text)
    assert "vigil dashboard --hash-password" in str(err.value)
    assert not verify_password(PW, text)
