"""A login with an older scrypt hash replaces it with argon2id, in the file it came from (issue 22)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dashboard.auth import Authenticator, AuthError, ensure_admin
from dashboard.passwords import verify_password
from dashboard.settings import DashboardSettings, UserEntry
from tests.support.dashboard_app import NOW, PW, scrypt_hash
from vigil.core.clock import ManualClock


def test_the_generated_admins_scrypt_hash_becomes_argon2id_in_its_file(tmp_path: Path) -> None:
    hash_file = tmp_path / "dashboard-admin.hash"
    hash_file.write_text(scrypt_hash(PW) + "\n")
    hash_file.chmod(0o600)
    settings, password = ensure_admin(DashboardSettings(), tmp_path)
    assert password is None
    auth = Authenticator(settings, ManualClock(NOW))
    with pytest.raises(AuthError):
        auth.login("admin", "wrong password", "198.51.100.1")
    assert hash_file.read_text().startswith("scrypt$"), "a wrong password changes nothing"
    assert auth.login("admin", PW, "198.51.100.1")
    stored = hash_file.read_text()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and stored.endswith("\n")
    assert hash_file.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name != hash_file.name], "no temporary file left"
    # After a restart the same password logs in against the new hash.
    again, _ = ensure_admin(DashboardSettings(), tmp_path)
    assert verify_password(PW, again.users[0].password_hash)
    assert Authenticator(again, ManualClock(NOW)).login("admin", PW, "198.51.100.1")


def test_a_configured_scrypt_hash_logs_in_and_says_how_to_replace_it(caplog: pytest.LogCaptureFixture) -> None:
    settings = DashboardSettings(users=[UserEntry(name="ops", password_hash=scrypt_hash(PW), role="admin")])
    auth = Authenticator(settings, ManualClock(NOW))
    with caplog.at_level(logging.WARNING, logger="dashboard.auth"):
        assert auth.login("ops", PW, "198.51.100.1")
        assert auth.login("ops", PW, "198.51.100.1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "vigil dashboard --hash-password" in warnings[0], warnings
    with pytest.raises(AuthError):
        auth.login("ops", "wrong password", "198.51.100.1")
