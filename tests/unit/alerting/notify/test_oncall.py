"""On call: rotations across daylight-saving changes, overrides, now and next, and the checks of the names."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.notify import NotifyConfig
from alerting.notify.oncall import on_call, person_at, who_is_on_call

UTC = dt.timezone.utc
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
RECEIVERS = {"anna": "json://127.0.0.1:9/anna", "ben": "json://127.0.0.1:9/ben",
             "carla": "json://127.0.0.1:9/carla", "manager": "json://127.0.0.1:9/manager"}


def cfg(**data: Any) -> NotifyConfig:
    return NotifyConfig.model_validate({"receivers": RECEIVERS, **data})


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def handovers(config: NotifyConfig, name: str, start: float, end: float, zone: dt.tzinfo) -> list[tuple[str, str]]:
    """Every change of person between start and end: (local time of the change, the person from then on)."""
    out = []
    now = start
    while True:
        oc = on_call(name, config.schedules[name], now, zone)
        if oc.until is None or oc.until >= end:
            return out
        assert oc.next_person is not None and oc.next_person != oc.person
        out.append((dt.datetime.fromtimestamp(oc.until, zone).strftime("%m-%d %H:%M %Z"), oc.next_person))
        now = oc.until


@pytest.mark.parametrize(("zone", "handover", "start", "expected"), [
    # spring forward: 02:30 does not exist on 29 March in Berlin; that night's hand-over happens at 03:30
    ("Europe/Berlin", "02:30", "2026-03-27",
     ["03-28 02:30 CET", "03-29 03:30 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]),
    # fall back: 02:30 happens twice on 25 October; the hand-over happens once, at the first
    ("Europe/Berlin", "02:30", "2026-10-23",
     ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"]),
    ("America/New_York", "02:30", "2026-03-06",
     ["03-07 02:30 EST", "03-08 03:30 EDT", "03-09 02:30 EDT", "03-10 02:30 EDT"]),
    ("America/New_York", "01:30", "2026-10-30",
     ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST", "11-03 01:30 EST"]),
])
def test_a_daily_hand_over_in_a_dst_night_happens_exactly_once(zone: str, handover: str, start: str,
                                                               expected: list[str]) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    config = cfg(schedules={"cooks": {"rotation": "daily", "handover": handover, "start": start,
                                      "people": ["anna", "ben"], "time_zone": zone}})
    begin = dt.datetime.fromisoformat(f"{start}T12:00").replace(tzinfo=tz).timestamp()
    changes = handovers(config, "cooks", begin, begin + 4 * 86400 - 3600, tz)
    assert [when for when, _ in changes] == expected
    assert [who for _, who in changes] == ["ben", "anna", "ben", "anna"]


def test_on_a_fall_back_night_the_second_0230_does_not_hand_over_again() -> None:
    config = cfg(schedules={"cooks": {"rotation": "daily", "handover": "02:30", "start": "2026-10-20",
                                      "people": ["anna", "ben"], "time_zone": "Europe/Berlin"}})
    s = config.schedules["cooks"]
    first, second = ts("2026-10-25T00:30:00+00:00"), ts("2026-10-25T01:30:00+00:00")  # both 02:30 local
    assert person_at(s, first - 1, BERLIN) != person_at(s, first, BERLIN)
    assert person_at(s, second - 1, BERLIN) == person_at(s, second, BERLIN) == person_at(s, first, BERLIN)


def test_weekly_rotation_turns_on_its_day_at_its_time_in_the_site_zone_by_default() -> None:
    config = cfg(schedules={"cooks": {"rotation": "weekly", "handover": "07:00", "day": "mon",
                                      "start": "2026-03-23", "people": ["anna", "ben", "carla"]}})
    s = config.schedules["cooks"]
    assert person_at(s, ts("2026-03-23T06:59:00+01:00"), BERLIN) is None  # before the first shift
    assert person_at(s, ts("2026-03-23T07:00:00+01:00"), BERLIN) == "anna"
    assert person_at(s, ts("2026-03-30T06:59:00+02:00"), BERLIN) == "anna"  # across the DST change
    assert person_at(s, ts("2026-03-30T07:00:00+02:00"), BERLIN) == "ben"
    assert person_at(s, ts("2026-04-06T07:00:00+02:00"), BERLIN) == "carla"
    assert person_at(s, ts("2026-04-13T07:00:00+02:00"), BERLIN) == "anna"
    # the same schedule in the zone the dispatcher gives (New York): 07:00 there
    assert person_at(s, ts("2026-03-30T07:00:00-04:00"), NEW_YORK) == "ben"
    [now] = who_is_on_call(config, ts("2026-04-01T12:00:00+02:00"), BERLIN)
    assert (now.schedule, now.person, now.next_person) == ("cooks", "ben", "carla")
    assert now.until == now.next_from == ts("2026-04-06T07:00:00+02:00")
    [before] = who_is_on_call(config, ts("2026-03-01T12:00:00+01:00"), BERLIN)
    assert (before.person, before.next_person, before.next_from) == (None, "anna", ts("2026-03-23T07:00:00+01:00"))


def test_overrides_win_and_now_and_next_account_for_them() -> None:
    config = cfg(schedules={"cooks": {
        "rotation": "daily", "handover": "07:00", "start": "2026-12-20", "people": ["anna", "ben"],
        "time_zone": "Europe/Berlin",
        "overrides": [{"from": "2026-12-24", "until": "2026-12-27", "person": "carla"},  # dates: at hand-over
                      {"from": "2026-12-31 18:00", "until": "2027-01-01T09:00:00+01:00", "person": "manager"}]}})
    s = config.schedules["cooks"]
    assert person_at(s, ts("2026-12-24T06:59:00+01:00"), BERLIN) == "ben"  # 23rd's shift (index 3)
    assert person_at(s, ts("2026-12-24T07:00:00+01:00"), BERLIN) == "carla"
    assert person_at(s, ts("2026-12-27T06:59:00+01:00"), BERLIN) == "carla"
    assert person_at(s, ts("2026-12-27T07:00:00+01:00"), BERLIN) == "ben"  # back to the rotation (27th: index 7)
    assert person_at(s, ts("2026-12-31T18:00:00+01:00"), BERLIN) == "manager"
    assert person_at(s, ts("2027-01-01T08:59:00+01:00"), BERLIN) == "manager"
    assert person_at(s, ts("2027-01-01T09:00:00+01:00"), BERLIN) == "anna"  # 1 Jan: the 13th shift (index 12)
    [oc] = who_is_on_call(config, ts("2026-12-23T12:00:00+01:00"), BERLIN)
    assert (oc.person, oc.next_person, oc.next_from) == ("ben", "carla", ts("2026-12-24T07:00:00+01:00"))


@pytest.mark.parametrize(("data", "words"), [
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": []}}},
     "needs at least one person"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05",
                              "people": ["anna", "nobody"]}}}, "unknown receiver 'nobody'"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": ["anna"],
                              "overrides": [{"from": "2026-02-01", "until": "2026-02-05", "person": "ben"},
                                            {"from": "2026-02-04", "until": "2026-02-06", "person": "carla"}]}}},
     "overlap"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": ["anna"],
                              "overrides": [{"from": "2026-02-05", "until": "2026-02-01", "person": "ben"}]}}},
     "until must be after from"),
    ({"schedules": {"cooks": {"rotation": "weekly", "handover": "07:00", "day": "tue", "start": "2026-01-05",
                              "people": ["anna"]}}}, "must start on that day"),
    ({"schedules": {"cooks": {"rotation": "hourly", "handover": "07:00", "start": "2026-01-05", "people": ["a"]}}},
     "rotation"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "25:00", "start": "2026-01-05", "people": ["anna"]}}},
     "time of day"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": ["anna"],
                              "time_zone": "Mars/Olympus"}}}, "unknown IANA time zone"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "9999-12-31", "people": ["anna"]}}},
     "expected a date between 1971 and 2200"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": ["anna"],
                              "overrides": [{"from": "0001-01-01 00:00", "until": "2026-02-01", "person": "ben"}]}}},
     "expected a date between 1971 and 2200"),
    ({"schedules": {"cooks": {"rotation": "daily", "handover": True, "start": "2026-01-05", "people": ["anna"]}}},
     "time of day"),
    ({"schedules": {"anna": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05", "people": ["ben"]}}},
     "already a receiver's name"),
    ({"escalation_policies": {"p": [{"notify": ["anna"]}, {"after": "10m", "notify": ["q"]}],
                              "q": [{"notify": ["p"]}]}}, "escalation policy cycle p -> q -> p"),
    ({"escalation_policies": {"p": [{"notify": ["nobody"]}]}}, "unknown receiver or schedule 'nobody'"),
    ({"escalation_policies": {"p": [{"after": "5m", "notify": ["anna"]}]}}, "first step is notified at once"),
    ({"escalation_policies": {"p": [{"notify": ["anna"]}, {"after": "10m", "notify": ["ben"]},
                                    {"after": "5m", "notify": ["carla"]}]}}, "steps come in order"),
    ({"escalation_policies": {"p": []}}, "at least one step"),
    ({"routes": [{"receivers": ["nobody"]}]}, "unknown receiver 'nobody'"),
    ({"escalation_policies": {"p": [{"notify": ["anna"]}]}, "escalation": [{"after": "1m", "receivers": ["p"]}]},
     "unknown receiver 'p'"),
])
def test_bad_schedules_and_policies_are_refused_with_a_reason(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cfg(**data)
    assert words in str(exc.value)


def test_names_work_where_receivers_do() -> None:
    config = cfg(schedules={"cooks": {"rotation": "daily", "handover": "07:00", "start": "2026-01-05",
                                      "people": ["anna"]}},
                 escalation_policies={"kitchen": [{"notify": "cooks"}, {"after": "10m", "notify": ["manager"]}]},
                 routes=[{"receivers": ["cooks"]}], escalation=[{"after": "1h", "receivers": ["cooks"]}])
    assert config.unknown_receivers(["cooks", "kitchen", "anna", "ghost"]) == ["ghost"]
    assert config.known_names() == "anna, ben, carla, cooks, kitchen, manager"


# the dispatcher: schedules resolve when a message is due, policies escalate until acknowledged
ON_CALL = {"cooks": {"rotation": "daily", "handover": "21:00", "start": "2026-05-01", "people": ["anna", "ben"],
                     "time_zone": "UTC"}}  # 28 May 20:26:40 (START): anna; from 21:00: ben
POLICY = {"kitchen": [{"notify": ["cooks"]}, {"after": "10m", "notify": ["manager"]},
                      {"after": "30m", "notify": ["anna", "ben", "carla", "manager"]}]}


def _to(h: Any) -> list[tuple[str, str]]:
    return [(m.urls[0].rsplit("/", 1)[1], m.title.split("]")[0] + "]") for m in h.sender.sent]


async def test_a_policy_notifies_the_cook_on_call_then_the_manager_then_everyone(tmp_path: Any) -> None:
    from tests.support.dispatcher import Harness, transition

    h = Harness(tmp_path / "alerts.db", cfg(schedules=ON_CALL, escalation_policies=POLICY,
                                            grouping={"group_wait": "30s", "group_interval": "5m"}))
    try:
        h.enqueue(transition(notify=("kitchen",)))
        for at in (0, 30, 599):
            await h.at(at)
        assert _to(h) == [("anna", "[FIRING critical]")]
        await h.at(600)
        await h.at(630)
        assert _to(h)[1:] == [("manager", "[ESCALATED critical]")]
        assert "Nobody acknowledged it in 10m" in h.sender.sent[1].body
        await h.at(1800)
        await h.at(1830)
        # everyone: ben (now on call too, from 21:00) and carla are new; anna and the manager were told already
        assert sorted(_to(h)[2:]) == [("ben", "[ESCALATED critical]"), ("carla", "[ESCALATED critical]")]
    finally:
        h.close()


async def test_an_acknowledged_alert_goes_no_further_along_its_policy(tmp_path: Any) -> None:
    from tests.support.dispatcher import Harness, transition

    h = Harness(tmp_path / "alerts.db", cfg(schedules=ON_CALL, escalation_policies=POLICY))
    try:
        t = transition(notify=("kitchen",))
        h.enqueue(t)
        await h.at(0)
        await h.at(30)
        h.dispatcher.acknowledge(t.key, "anna")
        for at in (600, 630, 1800, 1830, 4 * 3600 + 60):
            await h.at(at)
        assert _to(h) == [("anna", "[FIRING critical]")]
        assert h.dispatcher.status().alerts[0].escalated == ()
    finally:
        h.close()


async def test_the_person_taking_over_at_hand_over_hears_of_an_alert_still_firing(tmp_path: Any) -> None:
    from tests.support.dispatcher import Harness, transition

    h = Harness(tmp_path / "alerts.db", cfg(schedules=ON_CALL, grouping={"group_wait": "30s"}))
    try:
        h.enqueue(transition(notify=("cooks",)))
        await h.at(0)
        await h.at(30)
        assert _to(h) == [("anna", "[FIRING critical]")]
        await h.at(1999)  # 20:59:59
        assert len(h.sender.sent) == 1
        await h.at(2000)  # 21:00: ben is on call
        await h.at(2030)
        assert _to(h)[1:] == [("ben", "[FIRING critical]")]
        await h.at(2030 + 4 * 3600)  # the reminder goes to whoever is on call then: ben, not anna
        await h.at(2030 + 4 * 3600 + 300)
        assert _to(h)[2:] == [("ben", "[FIRING critical]")] and "Still firing" in h.sender.sent[2].body
    finally:
        h.close()


def test_a_wrong_schedule_is_one_error_not_also_every_rule_naming_its_policy() -> None:
    from alerting.rules import RulesError, load_rules_text

    text = """
receivers: {ana: "json://127.0.0.1:9/a", manager: "json://127.0.0.1:9/m"}
schedules:
  cooks: {rotation: weekly, handover: "mon 08:00", start: 2026-11-30, people: [ana]}
escalation_policies:
  freezers: [{notify: [cooks]}, {after: 10m, notify: [manager]}]
rules:
  - {name: freezer-warm, above: -15, notify: [freezers]}
"""
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "t.yaml")
    messages = [str(i) for i in caught.value.issues]
    assert len(messages) == 1, messages
    assert "handover" in messages[0] and "t.yaml:4" in messages[0]


async def test_an_excursion_learned_late_gives_the_cook_the_policys_time_before_the_manager(tmp_path: Any) -> None:
    """A Pi's backlog after an outage: the excursion fired two hours ago, Vigil learns of it now. Nobody could
    have acknowledged it, so the policy's 10 minutes start now, not at the firing."""
    import dataclasses

    from tests.support.dispatcher import START, Harness, transition

    h = Harness(tmp_path / "alerts.db", cfg(schedules=ON_CALL, escalation_policies=POLICY,
                                            grouping={"group_wait": "30s", "group_interval": "5m"}))
    try:
        h.enqueue(dataclasses.replace(transition(notify=("kitchen",), at=START - 7200), reported=START))
        for at in (0, 30, 599):
            await h.at(at)
        assert _to(h) == [("anna", "[FIRING critical]")]
        await h.at(600)
        await h.at(630)
        assert _to(h)[1:] == [("manager", "[ESCALATED critical]")]
    finally:
        h.close()
