"""The acknowledgement link's page and its single use, over a recording publisher and a manual clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.dashboard_app import NOW, Harness
from vigil.core.acklink import load_secret, sign

KEY = "warm/freezer/t0/temperature"
SINCE = NOW - 600


def publish_alert(h: Harness, state: str = "firing", since: float = SINCE, **extra: object) -> None:
    body = {"id": "t1", "rule": "warm", "series": "freezer/t0/temperature", "state": state, "previous": "pending",
            "at": NOW - 60, "severity": "critical", "message": "freezer is -4.2 °C", "since": since, "value": -4.2,
            **extra}
    h.live.handle(f"vigil/alerts/{KEY}", json.dumps(body).encode(), NOW)


def link(h: Harness, to: str = "ana", episode: float = SINCE, expires: float = NOW + 86400, key: str = KEY) -> str:
    return "/ack/" + sign(load_secret(Path(h.config.data_dir)), key, episode, to, expires)


async def test_the_page_shows_the_alert_and_a_button_without_a_login(harness: Harness) -> None:
    publish_alert(harness, peak=-3.1)
    r = await harness.client.get(link(harness))
    assert r.status_code == 200
    assert 'data-outcome="form"' in r.text and ">Acknowledge</button>" in r.text
    for text in ("warm", "freezer/t0/temperature", "firing", "-4.2", "-3.1", "freezer is -4.2 °C", "As ana."):
        assert text in r.text
    assert harness.publisher.sent == []  # looking acknowledges nothing (link previewers open links too)


async def test_a_post_acknowledges_once_and_a_replay_says_who_and_when(harness: Harness) -> None:
    publish_alert(harness)
    url = link(harness)
    r = await harness.client.post(url, data={"note": "closed the door, moved stock"})
    assert r.status_code == 200, r.text
    assert "Acknowledged by ana at" in r.text and 'data-outcome="done"' in r.text
    [(topic, payload, qos, retain)] = harness.publisher.sent
    assert topic == f"vigil/ack/{KEY}" and qos == 1 and not retain
    body = json.loads(payload)
    assert {k: body[k] for k in ("by", "comment", "episode", "via", "note")} == {
        "by": "ana", "comment": "", "episode": SINCE, "via": "link", "note": "closed the door, moved stock"}
    harness.clock.advance(30)
    again = await harness.client.post(url, content=b"")
    assert again.status_code == 410 and "already used" in again.text and "ana acknowledged with it" in again.text
    assert len(harness.publisher.sent) == 1
    assert (await harness.client.get(url)).status_code == 410


async def test_an_empty_post_as_ntfy_sends_acknowledges_without_a_note(harness: Harness) -> None:
    publish_alert(harness, state="cleared", ended=NOW - 100, peak=-2.0)
    r = await harness.client.post(link(harness), content=b"", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert json.loads(harness.publisher.sent[0][1])["note"] is None


async def test_expired_altered_and_malformed_links_are_refused_without_details(harness: Harness) -> None:
    publish_alert(harness)
    expired = link(harness, expires=NOW - 1)
    r = await harness.client.get(expired)
    assert r.status_code == 410 and 'data-outcome="expired"' in r.text
    good = link(harness)
    altered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for method in ("GET", "POST"):
        r = await harness.client.request(method, altered)
        assert r.status_code == 403 and 'data-outcome="altered"' in r.text
        assert "freezer" not in r.text and "warm" not in r.text  # nothing of the alert leaks
        r = await harness.client.request(method, "/ack/not-a-token")
        assert r.status_code == 400 and 'data-outcome="malformed"' in r.text
    foreign = "/ack/" + sign(b"another site's secret", KEY, SINCE, "ana", NOW + 60)
    assert (await harness.client.post(foreign)).status_code == 403
    assert harness.publisher.sent == []


async def test_a_link_for_an_earlier_excursion_does_not_acknowledge_the_new_one(harness: Harness) -> None:
    publish_alert(harness, since=NOW - 60)  # it cleared and fired again
    r = await harness.client.post(link(harness, episode=SINCE))
    assert r.status_code == 409 and "earlier" in r.text
    assert harness.publisher.sent == []
    # The link was not used up by the refusal: nothing to replay.
    publish_alert(harness, since=SINCE)
    assert (await harness.client.post(link(harness, episode=SINCE))).status_code == 200


async def test_an_alert_already_acknowledged_or_over_or_unknown_is_said(harness: Harness) -> None:
    r = await harness.client.get(link(harness))
    assert r.status_code == 404 and "No such alert" in r.text
    publish_alert(harness, acknowledged_by="bob", acknowledged_at=NOW - 5)
    r = await harness.client.post(link(harness))
    assert r.status_code == 200 and "Already acknowledged by bob" in r.text
    publish_alert(harness, state="resolved", since=SINCE + 1)
    r = await harness.client.post(link(harness, episode=SINCE + 1))
    assert r.status_code == 409 and "over" in r.text
    assert harness.publisher.sent == []


@pytest.mark.parametrize(("body", "ctype", "status", "words"), [
    ("note=" + "x" * 2001, "application/x-www-form-urlencoded", 400, "too long"),
    ("note=%FF%FE", "application/x-www-form-urlencoded", 400, "could not be read"),
    ("note=a%00b", "application/x-www-form-urlencoded", 400, "control character"),
    ("note=evil%E2%80%AEtxt.exe", "application/x-www-form-urlencoded", 400, "U+202E"),
    ("&".join(f"f{i}=1" for i in range(50)), "application/x-www-form-urlencoded", 400, "could not be read"),
    ('{"note": 5}', "application/json", 400, "could not be read"),
    ("[1, 2]", "application/json", 400, "could not be read"),
    ('{"note": NaN', "application/json", 400, "could not be read"),
    ("<xml/>", "application/xml", 415, "Send a form"),
])
async def test_hostile_bodies_are_refused_and_leave_the_link_usable(harness: Harness, body: str, ctype: str,
                                                                     status: int, words: str) -> None:
    publish_alert(harness)
    url = link(harness)
    r = await harness.client.post(url, content=body.encode(), headers={"Content-Type": ctype})
    assert r.status_code == status and words in r.text
    assert harness.publisher.sent == []
    assert (await harness.client.post(url, data={"note": "ok"})).status_code == 200


async def test_a_broker_outage_answers_503_and_the_link_works_afterwards(harness: Harness) -> None:
    publish_alert(harness)
    url = link(harness)
    harness.publisher.down = True
    r = await harness.client.post(url, data={"note": "kept"})
    assert r.status_code == 503 and "Try again" in r.text and "kept</textarea>" in r.text
    harness.publisher.down = False
    assert (await harness.client.post(url)).status_code == 200


async def test_used_links_are_forgotten_after_they_expire(harness: Harness) -> None:
    publish_alert(harness)
    url = link(harness, expires=NOW + 60)
    assert (await harness.client.post(url)).status_code == 200
    harness.clock.advance(120)
    other = link(harness, to="bob", expires=NOW + 86400)  # any later use prunes the expired nonces
    assert (await harness.client.post(other)).status_code == 200
    import sqlite3
    with sqlite3.connect(Path(harness.config.data_dir) / "dashboard-links.db") as db:
        assert [r[0] for r in db.execute("SELECT by FROM used_links")] == ["bob"]


async def test_while_an_alert_flaps_the_engine_judges_the_links_episode(harness: Harness) -> None:
    # A flapping alert's since may have moved past the excursion its people were told of.
    publish_alert(harness, state="flapping", since=NOW - 60)
    r = await harness.client.post(link(harness, episode=SINCE))
    assert r.status_code == 200
    assert json.loads(harness.publisher.sent[0][1])["episode"] == SINCE
