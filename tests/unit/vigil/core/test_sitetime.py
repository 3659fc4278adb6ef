"""The site's time zone: the server's is found once per SERVER_ZONE_TTL (it reads files), TZ is followed at once."""

from __future__ import annotations

import pytest

from vigil.core import sitetime


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitetime, "_server", None)


def test_the_servers_zone_is_found_once_within_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    found: list[str] = []

    def server_zone_name() -> str:
        found.append("Asia/Tokyo")
        return "Asia/Tokyo"

    monkeypatch.setattr(sitetime, "server_zone_name", server_zone_name)
    monkeypatch.delenv("TZ", raising=False)
    zones = {sitetime.site_zone().key for _ in range(100)}
    assert zones == {"Asia/Tokyo"}
    assert len(found) == 1


def test_a_change_of_the_machines_zone_is_seen_once_the_ttl_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    name = ["Asia/Tokyo"]
    clock = [1000.0]
    monkeypatch.setattr(sitetime, "server_zone_name", lambda: name[0])
    monkeypatch.setattr(sitetime.time, "monotonic", lambda: clock[0])
    monkeypatch.delenv("TZ", raising=False)
    assert sitetime.site_zone().key == "Asia/Tokyo"
    name[0] = "Europe/Berlin"  # the administrator changed /etc/timezone
    clock[0] += sitetime.SERVER_ZONE_TTL - 1
    assert sitetime.site_zone().key == "Asia/Tokyo"
    clock[0] += 1
    assert sitetime.site_zone().key == "Europe/Berlin"


def test_tz_is_followed_at_once_and_a_named_zone_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert sitetime.site_zone().key == "America/New_York"
    monkeypatch.setenv("TZ", ":Europe/Lisbon")
    assert sitetime.site_zone().key == "Europe/Lisbon"
    assert sitetime.site_zone("Pacific/Auckland").key == "Pacific/Auckland"
    assert sitetime.format_time(0.0).startswith("1970-01-01 01:00:00")  # Lisbon was on CET in 1970
