"""The notification keys of a rules file: what is accepted, and the sentence a mistake gets."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.notify import NotifyConfig
from alerting.notify.config import __doc__ as CONFIG_DOC
from vigil.core._yaml import load_yaml
from vigil.core.configerrors import describe_errors


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        NotifyConfig.model_validate(data)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors(include_url=False)]


def test_the_documented_example_is_valid() -> None:
    text = textwrap.dedent((CONFIG_DOC or "").split("::", 1)[1].split("A ``match``")[0])
    data, _ = load_yaml(text, "rules.yaml")
    cfg = NotifyConfig.model_validate(data)
    assert list(cfg.receivers) == ["kitchen-staff", "manager"]
    assert cfg.routes[0].continue_ and cfg.routes[0].match.globs == {"severity": ("critical",)}
    assert cfg.fallbacks["kitchen-staff"].fallback == ["manager"] and cfg.fallbacks["kitchen-staff"].attempts == 5
    assert cfg.grouping.group_wait == 5 and cfg.grouping.repeat_interval == 4 * 3600
    assert cfg.escalation[0].after == 900
    assert [w.weekdays for w in cfg.mute_windows] == [["mon", "tue", "wed", "thu", "fri"]]


def test_defaults_are_usable() -> None:
    cfg = NotifyConfig()
    assert (cfg.grouping.group_by, cfg.grouping.group_wait, cfg.grouping.group_interval) == (["rule"], 5, 60)
    assert cfg.delivery.in_doubt == "resend"


def test_secrets_never_show_in_repr_or_dump() -> None:
    cfg = NotifyConfig.model_validate({"receivers": {
        "a": ["tgram://123456789:AAEsecretTOKEN/987"], "b": "json://user:hunter2@hooks.example.com/x?token=abc123",
        "c": ["ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}"]}})
    shown = repr(cfg) + str(cfg.model_dump(mode="json"))
    for secret in ("AAEsecretTOKEN", "hunter2", "abc123", "VIGIL_NOTIFY_NTFY_TOPIC"):
        assert secret not in shown
    assert cfg.model_dump(mode="json")["receivers"] == {
        "a": ["tgram://***"], "b": ["json://hooks.example.com/***"], "c": ["ntfy://ntfy.sh/***"]}


def test_env_substitution_and_missing_secrets() -> None:
    cfg = NotifyConfig.model_validate({"receivers": {"a": "ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}"}})
    assert cfg.missing_secrets({}) == ["VIGIL_NOTIFY_NTFY_TOPIC"]
    assert cfg.missing_secrets({"VIGIL_NOTIFY_NTFY_TOPIC": "x"}) == []
    assert cfg.receivers["a"][0].resolve({"VIGIL_NOTIFY_NTFY_TOPIC": "freezers"}) == "ntfy://ntfy.sh/freezers"


def test_unquoted_yaml_times_are_read_as_clock_times() -> None:
    data, _ = load_yaml("mute_windows:\n  - {name: n, start: 22:00, end: 07:30}\n", "r.yaml")
    [window] = NotifyConfig.model_validate(data).mute_windows
    assert (window.start.hour, window.start.minute, window.end.hour, window.end.minute) == (22, 0, 7, 30)


@pytest.mark.parametrize(("data", "expected"), [
    ({"receivers": {"a": ["not a url"]}}, "receivers.a.0: Value error, expected an apprise URL"),
    ({"receivers": {"a": ["json://h/${bad name}"]}}, "is not an environment variable name"),
    ({"receivers": {"a": ["json://h/${OPEN"]}}, "an unclosed ${ in the URL"),
    ({"receivers": {"a": []}}, "receiver 'a' has no URL"),
    ({"receivers": {"a": ["json://h"]}, "routes": [{"receivers": ["b"]}]},
     "routes[0]: unknown receiver 'b' (known: a)"),
    ({"routes": [{"match": {"severity": "critcal"}, "receivers": ["a"]}]},
     "severity 'critcal' is none of info, warning, critical"),
    ({"grouping": {"group_wait": "5 minutes"}}, "expected a duration such as 30s, 5m, 1h30m or 7d"),
    ({"grouping": {"repeat_interval": "0s"}}, "repeat_interval must be more than 0s"),
    ({"grouping": {"group_wiat": "5m"}}, "grouping.group_wiat: Extra inputs are not permitted"),
    ({"mute_windows": [{"name": "n", "time_zone": "Mars/Olympus", "start": "22:00", "end": "07:00"}]},
     "unknown IANA time zone 'Mars/Olympus'"),
    ({"mute_windows": [{"name": "n", "weekdays": ["funday"], "start": "22:00", "end": "07:00"}]},
     "expected weekdays mon..sun, got 'funday'"),
    ({"mute_windows": [{"name": "n", "start": "25:00", "end": "07:00"}]},
     'expected a time of day such as "22:00", got \'25:00\''),
    ({"silences": [{"match": {"device": "x"}, "until": "2026-12-01T08:00:00"}]}, "timezone"),
    ({"silences": [{"match": {"device": "x"}, "until": "2026-12-01T08:00:00Z",
                    "starts": "2026-12-02T08:00:00Z"}]}, "starts must be before until"),
    ({"inhibit": [{"source": "offline", "target": {}}]}, "expected a mapping such as"),
    ({"routes": [{"match": {"site": []}, "receivers": ["a"]}]}, "expected a glob or a list of globs"),
    ({"delivery": {"in_doubt": "maybe"}}, "delivery.in_doubt"),
])
def test_mistakes_get_a_sentence(data: dict[str, Any], expected: str) -> None:
    assert any(expected in line for line in errors(data)), errors(data)


def test_errors_carry_the_file_line_through_describe_errors() -> None:
    text = "receivers:\n  staff: [json://h/x]\nmute_windows:\n  - name: nights\n    time_zone: Europe/Berlinn\n" \
           "    start: '22:00'\n    end: '07:00'\n"
    data, positions = load_yaml(text, "rules/kitchen.yaml")
    with pytest.raises(ValidationError) as info:
        NotifyConfig.model_validate(data)
    [issue] = describe_errors(info.value, NotifyConfig, positions, "rules/kitchen.yaml")
    assert str(issue) == ("rules/kitchen.yaml:5: mute_windows[0].time_zone: unknown IANA time zone "
                          "'Europe/Berlinn'; write e.g. Europe/Berlin or UTC")


def test_hostile_values_do_not_crash_validation() -> None:
    for data in ({"receivers": None}, {"receivers": {"a": [1e308]}}, {"routes": "all"},
                 {"grouping": {"group_wait": float("nan")}}, {"receivers": {"a": ["json://" + "x" * 100_000]}},
                 {"mute_windows": [{"name": "n", "start": True, "end": None}]}):
        try:
            NotifyConfig.model_validate(data)
        except ValidationError:
            pass
