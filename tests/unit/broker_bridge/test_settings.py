"""The bridge's sources and normalization settings in vigil.yaml: mistakes reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_bridge.settings import BridgeSettings
from broker_bridge.topic_pattern import PatternError, TopicPattern, filters_overlap
from vigil.app.config import ConfigError, dump_config, load_config
from vigil.core.topics import filter_matches


def problems(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "vigil.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    return [str(i).replace(str(p), "vigil.yaml") for i in err.value.issues]


def test_a_full_bridge_section_loads_and_dumps(tmp_path: Path) -> None:
    p = tmp_path / "vigil.yaml"
    p.write_text(
        "bridge:\n"
        "  sources:\n"
        "    - name: shelly\n"
        "      format: plain\n"
        "      topic: shellies/{device}/ext_temperature/{sensor}\n"
        "      defaults: {metric: temperature, unit: °C}\n"
        "      error_values: {temperature: [85, -127]}\n"
        "    - name: ha\n"
        "      format: json_path\n"
        "      topic: home/{room}/{device}\n"
        "      options: {value_path: value_json.temperature}\n"
        "    - name: vigil\n"
        "      format: vigil_json\n"
        "      labels: {site: lab}\n"
        "  device_labels:\n"
        "    freezer-1: {site: lab, room: cold-store}\n"
        "  units: {temperature: F}\n"
        "  ranges: {temperature: {min: -60, max: 150}}\n"
        "  max_future: 2m\n"
        "  max_age: 7d\n"
        "  implausible_ts: receive_time\n"
    )
    cfg = load_config(p).bridge
    assert [s.name for s in cfg.all_sources()] == ["vigil", "shelly", "ha"]
    assert cfg.all_sources()[0].labels == {"site": "lab"}
    assert (cfg.units["temperature"], cfg.units["humidity"]) == ("°F", "%")
    assert (cfg.ranges["temperature"].max, cfg.ranges["humidity"].max) == (150, 100)
    assert (cfg.max_future, cfg.max_age) == (120.0, 7 * 86400.0)
    text = dump_config(load_config(p))
    assert "shellies/{device}/ext_temperature/{sensor}" in text and "max_age: 7d" in text


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("bridge:\n  sources:\n    - name: s\n      format: csv\n      topic: a/{device}\n",
         "vigil.yaml:4: bridge.sources[0].format: expected 'vigil_json', 'plain', 'tasmota', 'zigbee2mqtt', "
         "'shelly', 'json_path' or 'line_protocol', got 'csv'"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n",
         "vigil.yaml:3: bridge.sources[0]: source 's': topic is required"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device\n",
         "vigil.yaml:5: bridge.sources[0].topic: topic pattern 'a/{device': level '{device': a {name}, '+' or '#' "
         "must be a whole level"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/#/{device}\n",
         "vigil.yaml:5: bridge.sources[0].topic: topic pattern 'a/#/{device}': '#' may only be the last level"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{x}/{x}\n",
         "vigil.yaml:5: bridge.sources[0].topic: topic pattern 'a/{x}/{x}': {x} appears twice"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n"
         "      options: {value_path: x}\n",
         "vigil.yaml:3: bridge.sources[0]: option value_path does not apply to format plain (it takes: scale)"),
        ("bridge:\n  sources:\n    - name: s\n      format: json_path\n      topic: a/{device}\n",
         "vigil.yaml:3: bridge.sources[0]: format json_path needs options.value_path or options.paths"),
        ("bridge:\n  sources:\n    - name: s\n      format: json_path\n      topic: a/{device}\n"
         "      options:\n        value_path: a..b\n",
         "vigil.yaml:7: bridge.sources[0].options.value_path: path 'a..b': empty key"),
        ("bridge:\n  sources:\n    - name: s\n      format: tasmota\n      topic: tele/{device}/SENSOR\n"
         "      options:\n        timezone: Mars/Olympus\n",
         "vigil.yaml:7: bridge.sources[0].options.timezone: unknown time zone 'Mars/Olympus'; use a name such "
         "as Europe/Berlin or UTC"),
        ("bridge:\n  sources:\n    - name: a/b\n      format: plain\n      topic: a/{device}\n",
         "vigil.yaml:3: bridge.sources[0].name: name 'a/b' is not a valid topic segment: it contains a '/'"),
        ("bridge:\n  sources:\n    - name: vigil\n      format: plain\n",
         "vigil.yaml:3: bridge.sources[0]: the source named 'vigil' is Vigil's own"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n"
         "    - name: s\n      format: plain\n      topic: b/{device}\n",
         "vigil.yaml:2: bridge.sources: two sources are named 's'"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n      qos: 3\n",
         "vigil.yaml:6: bridge.sources[0].qos: expected 0, 1 or 2, got 3"),
        ("bridge:\n  device_labels:\n    freezer: {device: x}\n",
         "vigil.yaml:3: bridge.device_labels.freezer.device[key]: 'device' cannot be a label"),
        ("bridge:\n  units:\n    humidity: °C\n",
         "vigil.yaml:2: bridge.units: humidity: '°C' is not a unit of humidity"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n"
         "      defaults:\n        metric: humidity\n        unit: °F\n",
         "vigil.yaml:6: bridge.sources[0].defaults: unit '°F' is not a unit of humidity (such as '%')"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n"
         "      options:\n        scale: 0\n",
         "vigil.yaml:7: bridge.sources[0].options.scale: scale must be a finite number other than 0"),
        ("bridge:\n  max_future: soon\n", "vigil.yaml:2: bridge.max_future: expected a duration such as 30s"),
        ("bridge:\n  implausible_ts: guess\n",
         "vigil.yaml:2: bridge.implausible_ts: expected 'refuse' or 'receive_time', got 'guess'"),
        ("bridge:\n  sources:\n    - name: s\n      format: plain\n      topic: a/{device}\n"
         "      error_values: {temperature: [hot]}\n",
         "vigil.yaml:6: bridge.sources[0].error_values.temperature[0]: expected a number"),
    ],
)
def test_mistakes_name_the_line_and_what_is_expected(tmp_path: Path, yaml_text: str, expected: str) -> None:
    got = problems(tmp_path, yaml_text)
    assert len(got) == 1 and got[0].startswith(expected), got


def test_overlapping_sources_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    settings = BridgeSettings.model_validate({"sources": [
        {"name": "esphome", "format": "plain", "topic": "{device}/sensor/{sensor}/state"},
        {"name": "shelly", "format": "plain", "topic": "shellies/{device}/sensor/{metric}"},
    ]})
    assert [s.name for s in settings.all_sources()] == ["vigil", "esphome", "shelly"]
    assert "'esphome' (+/sensor/+/state) and 'shelly' (shellies/+/sensor/+) overlap" in caplog.text


@pytest.mark.parametrize(
    ("pattern", "topic", "fields"),
    [
        ("shellies/{device}/ext_temperature/{sensor}", "shellies/sh1/ext_temperature/0",
         {"device": "sh1", "sensor": "0"}),
        ("shellies/{device}/ext_temperature/{sensor}", "shellies/sh1/ext_temperature", None),
        ("shellies/{device}/ext_temperature/{sensor}", "shellies/sh1/temperature/0", None),
        ("home/{room}/+/{device}/#", "home/k/x/d", {"room": "k", "device": "d"}),
        ("home/{room}/+/{device}/#", "home/k/x/d/a/b", {"room": "k", "device": "d"}),
        ("home/{room}/+/{device}/#", "home/k/x", None),
        ("{device}", "x", {"device": "x"}),
        ("{device}", "", {"device": ""}),
    ],
)
def test_topic_patterns(pattern: str, topic: str, fields: dict[str, str] | None) -> None:
    p = TopicPattern(pattern)
    assert p.match(topic) == fields
    if fields is not None:
        assert filter_matches(p.filter, topic)


@pytest.mark.parametrize("bad", ["", "$SYS/{device}", "a/{dev ice}", "a/b{device}", "a/#/b", "a/{x}/{x}", "a/\x00"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(PatternError):
        TopicPattern(bad)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [("a/+", "a/b", True), ("a/+", "b/+", False), ("a/#", "a", True), ("+/sensor/+/state", "x/y", False),
     ("vigil/readings/#", "+/+/+/+", True), ("vigil/readings/#", "tele/+/SENSOR", False), ("#", "x", True),
     ("a/b/c", "a/b", False)],
)
def test_filters_overlap(a: str, b: str, overlap: bool) -> None:
    assert filters_overlap(a, b) is overlap
    assert filters_overlap(b, a) is overlap


def test_filter_matches_leaves_broker_topics_alone() -> None:
    assert not filter_matches("#", "$SYS/broker/uptime")
    assert not filter_matches("+/status", "$SYS/status")
    assert filter_matches("a/#", "a")


def test_every_format_name_in_the_settings_has_a_parser() -> None:
    from typing import get_args

    from broker_bridge.formats import FORMATS
    from broker_bridge.settings import SourceSettings

    assert list(FORMATS) == list(get_args(SourceSettings.model_fields["format"].annotation))
    assert all(FORMATS[name].name == name for name in FORMATS)
